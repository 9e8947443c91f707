import type { ConsumerMessages } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import type { Command } from 'commander'
import {
  collectList,
  Exit,
  natsServers,
  natsUnreachableMessage,
  type OutputFormat,
  outputOption,
  parseDuration,
  UsageError,
  withExamples,
} from '../../lib/common.js'
import { addNatsOptions, type NatsFlags, natsConnectOptions } from '../../lib/nats-connect.js'
import { parseEvent } from '../../schemas/messages.js'
import { EVENTS_STREAM, EVENTS_SUBJECTS } from '../../schemas/subjects.js'
import { eventHeader, formatEventRow, matchesFilter } from './events-view.js'

/** The events stream does not exist (no reconciler ran yet); the check is loaded on use, as the client is. */
const streamNotFound = async (err: unknown) => (await import('../transport/nats-errors.js')).isStreamNotFound(err)

interface EventsFlags extends NatsFlags {
  since: string
  commit?: string
  zone?: string[]
  watch?: boolean
  output: OutputFormat
  timeout: string
}

/**
 * `zonegate events [--since 1h] [--commit SHA] [--zone Z]... [--watch] [-o json|yaml]`: the commit and rollout
 * events of stream ZONEGATE_EVENTS (kept 7 days), oldest first, like `flux events`: one ordered consumer from
 * `now - since`; without `--watch` it stops at the last event stored when it started. Exit 0; 2 on bad flags
 * or when NATS cannot be reached; 1 when the stream does not exist (no reconciler ever ran).
 */
export function registerEventsCommand(program: Command): void {
  const cmd = addNatsOptions(
    program
      .command('events')
      .description('list commit and rollout events from the stream (like flux events); --watch follows new ones')
      .option('--since <duration>', 'events newer than this (e.g. 30m, 1h, 2h30m; 0 = all kept)', '1h')
      .option('--commit <sha>', 'only events of this commit (full sha or prefix)')
      .option('--zone <zone>', 'only events of this zone (repeatable)', collectList)
      .option('--watch', 'keep following new events until Ctrl-C')
      .option('--timeout <duration>', 'how long to wait for NATS to answer (at most 5s is used)', '5s')
      .addOption(outputOption()),
  ).action(async (flags: EventsFlags) => {
    process.exitCode = await runEvents(flags)
  })
  withExamples(cmd, [
    'zonegate events                                   # the last hour',
    'zonegate events --since 24h --zone zone-a',
    'zonegate events --commit "$(git rev-parse --short HEAD)" --watch',
    'zonegate events --since 0 -o json | jq -c "select(.type == \\"rollout.rejected\\")"',
  ])
}

async function runEvents(flags: EventsFlags): Promise<number> {
  const sinceMs = parseDuration(flags.since, '--since')
  const commit = flags.commit?.toLowerCase()
  if (commit !== undefined && !/^[0-9a-f]{4,64}$/.test(commit))
    throw new UsageError(`--commit: expected a hex sha (at least 4 characters), got "${flags.commit}"`)
  const filter = { ...(commit ? { commit } : {}), zones: flags.zone ?? [] }
  const servers = natsServers(flags.nats)
  const auth = await natsConnectOptions(flags)
  const { connect } = await import('@nats-io/transport-node')
  const { natsServersAnswering, connectBudgetMs } = await import('../../lib/nats-probe.js')
  const budget = connectBudgetMs(parseDuration(flags.timeout, '--timeout'))
  const answering = await natsServersAnswering(servers, budget)
  let nc: NatsConnection
  try {
    nc = await connect({
      ...auth,
      servers: answering,
      name: 'zonegate-events',
      maxReconnectAttempts: flags.watch ? -1 : 0,
      timeout: budget,
    })
  } catch (err) {
    throw new UsageError(natsUnreachableMessage(servers, err))
  }
  const yaml = flags.output === 'yaml' ? (await import('yaml')).stringify : undefined
  const print = (line: string) => process.stdout.write(`${line}\n`)
  let msgs: ConsumerMessages | undefined
  const stop = () => msgs?.stop()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    const { jetstream, jetstreamManager, DeliverPolicy } = await import('@nats-io/jetstream')
    const jsm = await jetstreamManager(nc, { checkAPI: false })
    let lastSeq: number
    try {
      lastSeq = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq
    } catch (err) {
      if (!(await streamNotFound(err))) throw err
      process.stderr.write(`zonegate: stream ${EVENTS_STREAM} not found: no reconciler has run on this NATS yet\n`)
      return Exit.Failed
    }
    const consumer = await jetstream(nc).consumers.get(EVENTS_STREAM, {
      filter_subjects: EVENTS_SUBJECTS,
      ...(sinceMs > 0
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(Date.now() - sinceMs).toISOString() }
        : { deliver_policy: DeliverPolicy.All }),
    })
    if (flags.output === 'text') print(eventHeader())
    const pending = (await consumer.info()).num_pending
    if (pending === 0 && !flags.watch) return Exit.Ok
    msgs = await consumer.consume()
    for await (const m of msgs) {
      const event = parseEvent(m.string())
      if (event && matchesFilter(event, filter)) {
        if (flags.output === 'json') print(JSON.stringify(event))
        else if (yaml) print(`---\n${yaml(event, { lineWidth: 0 }).trimEnd()}`)
        else print(formatEventRow(event))
      }
      if (!flags.watch && m.seq >= lastSeq) break
    }
    return Exit.Ok
  } finally {
    msgs?.stop()
    process.removeListener('SIGINT', stop)
    process.removeListener('SIGTERM', stop)
    await nc.close().catch(() => {})
  }
}
