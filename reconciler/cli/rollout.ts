import type { ConsumerMessages, JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { type Command, Option } from 'commander'
import {
  natsServers,
  natsUnreachableMessage,
  outputOption,
  parseDuration,
  UsageError,
  withExamples,
} from '../../lib/common.js'
import { addNatsOptions, type NatsAuthOptions, type NatsFlags, natsConnectOptions } from '../../lib/nats-connect.js'
import { parseEvent } from '../../schemas/messages.js'
import { commitSubject, commitSubjects, EVENTS_STREAM, EVENTS_SUBJECTS } from '../../schemas/subjects.js'
import {
  exitCodeFor,
  formatEvent,
  formatSummary,
  hasTarget,
  initialWatchState,
  isRelevant,
  stepWatch,
  timeoutWatch,
  type WatchOptions,
  type WatchState,
  watchResult,
} from './rollout-watch.js'

/** The events stream does not exist (no reconciler ran yet); the check is loaded on use, as the client is. */
const streamNotFound = async (err: unknown) => (await import('../transport/nats-errors.js')).isStreamNotFound(err)

/**
 * `zonegate rollout watch`: follows stream ZONEGATE_EVENTS with one ordered consumer (one filter subject,
 * `zonegate.events.>`, which nats-server 2.9 accepts) and feeds the events to rollout-watch.ts.
 * With `--commit`, it starts at the newest publication of the commit in the stream (its last `fetched`
 * event, replaying from there), else at the next new event. See docs/getting-started.md for the choices (next commit, superseded, --zone).
 */

const DEFAULT_TIMEOUT_MS = 60_000
const FULL_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/

interface WatchFlags extends NatsFlags {
  commit?: string
  zone?: string[]
  until?: string
  timeout?: string
  output: 'text' | 'json' | 'yaml'
}

/** Registers `rollout watch` on the program. */
export function registerRolloutCommand(program: Command): void {
  const rollout = program.command('rollout').description('follow rollouts of commits to the egress instances')
  addNatsOptions(
    rollout
      .command('watch')
      .description('follow rollout events; exit 0 on converged, 1 on invalid/stalled/timeout')
      .option('--commit <sha>', 'the commit to follow (full sha or prefix); its past events are replayed')
      .option('--zone <zone>', 'only this zone (repeatable)', (v: string, prev: string[] | undefined) => [
        ...(prev ?? []),
        v,
      ])
      .addOption(
        new Option('--until <state>', 'stop when the commit (default: the next commit) reaches this state').choices([
          'converged',
        ]),
      )
      .option('--timeout <duration>', 'give up after this long (default 60s with --commit/--until, else never)')
      .addOption(outputOption()),
  ).action(async (flags: WatchFlags) => {
    process.exitCode = await runRolloutWatch(flags)
  })
  withExamples(rollout.commands.find((c) => c.name() === 'watch') as Command, [
    'zonegate rollout watch --commit "$(git rev-parse HEAD)" --until converged   # exit 0 converged, 1 not',
    'zonegate rollout watch --zone zone-a              # follow every new event of zone-a',
    'zonegate rollout watch --commit 1a2b3c4 -o json --timeout 2m',
  ])
}

function watchOptions(flags: WatchFlags): WatchOptions {
  const commit = flags.commit?.toLowerCase()
  if (commit !== undefined && !/^[0-9a-f]{4,64}$/.test(commit))
    throw new UsageError(`--commit: expected a hex sha (at least 4 characters), got "${flags.commit}"`)
  return { commit, zones: flags.zone ?? [], untilConverged: flags.until === 'converged' }
}

async function connectOrFail(
  servers: string[],
  auth: NatsAuthOptions,
  timeoutMs: number | undefined,
): Promise<NatsConnection> {
  const { natsServersAnswering, connectBudgetMs } = await import('../../lib/nats-probe.js')
  const answering = await natsServersAnswering(servers, connectBudgetMs(timeoutMs))
  try {
    const { connect } = await import('@nats-io/transport-node')
    return await connect({
      ...auth,
      servers: answering,
      name: 'zonegate-rollout-watch',
      maxReconnectAttempts: 5,
      timeout: connectBudgetMs(timeoutMs),
    })
  } catch (err) {
    throw new UsageError(natsUnreachableMessage(servers, err))
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Last sequence of the stream, waiting (until the deadline) for the reconciler to create it. */
async function streamLastSeq(jsm: JetStreamManager, deadline: number): Promise<number | undefined> {
  for (;;) {
    try {
      return (await jsm.streams.info(EVENTS_STREAM)).state.last_seq
    } catch (err) {
      if (!(await streamNotFound(err))) throw err
      if (Date.now() >= deadline) return undefined
      await sleep(250)
    }
  }
}

/**
 * A sha prefix → the full sha, from the commit subjects in the stream; the prefix itself when no commit
 * matches yet (it may still come); UsageError when it is ambiguous.
 */
async function resolveSha(jsm: JetStreamManager, prefix: string): Promise<string> {
  if (FULL_SHA.test(prefix)) return prefix
  const info = await jsm.streams.info(EVENTS_STREAM, { subjects_filter: 'zonegate.events.commit.*.*' })
  const shas = new Set(
    Object.keys(info.state.subjects ?? {})
      .map((s) => s.split('.')[3] ?? '')
      .filter((sha) => sha.startsWith(prefix)),
  )
  if (shas.size > 1) throw new UsageError(`--commit ${prefix} is ambiguous: ${[...shas].join(', ')}`)
  return [...shas][0] ?? prefix
}

/**
 * Where the newest publication of a commit starts in the stream: its last `commit.<sha>.fetched` event (a
 * commit published again, e.g. after a force-push back to it, has a `fetched` per publication), else its
 * first event; undefined when it has none yet.
 */
async function startSeqOf(jsm: JetStreamManager, sha: string): Promise<number | undefined> {
  try {
    const last = await jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: commitSubject(sha, 'fetched') })
    if (last?.seq) return last.seq
  } catch (err) {
    if (!(await streamNotFound(err))) throw err
  }
  return firstSeqOf(jsm, sha)
}

/** Sequence of the first event of a commit in the stream, or undefined when it has none yet. */
async function firstSeqOf(jsm: JetStreamManager, sha: string): Promise<number | undefined> {
  // STREAM.MSG.GET with next_by_subj (nats-server 2.9): the first message at or after seq 1 on the commit's subjects
  const query = { seq: 1, next_by_subj: commitSubjects(sha) } as unknown as { seq: number }
  try {
    const m = await jsm.streams.getMessage(EVENTS_STREAM, query)
    return m?.seq
  } catch (err) {
    if (await streamNotFound(err)) return undefined
    throw err
  }
}

/**
 * Runs the watch: connects, positions an ordered consumer, prints each relevant event (text or one JSON
 * object per line), stops at the outcome, `--timeout` or SIGINT/SIGTERM, prints the summary (text) or a
 * `watch.result` object (json), and returns the exit code (0 converged / interrupted follow, 1 otherwise).
 * Throws UsageError on bad flags or when NATS is unreachable (exit 2).
 */
export async function runRolloutWatch(flags: WatchFlags, out: (line: string) => void = println): Promise<number> {
  const options = watchOptions(flags)
  const timeoutMs =
    flags.timeout !== undefined
      ? parseDuration(flags.timeout, '--timeout')
      : hasTarget(options)
        ? DEFAULT_TIMEOUT_MS
        : undefined
  const json = flags.output !== 'text'
  // -o json: one object per line; -o yaml: a YAML stream (one `---` document per event)
  const yaml = flags.output === 'yaml' ? (await import('yaml')).stringify : undefined
  const serialize = (v: unknown) => (yaml ? `---\n${yaml(v, { lineWidth: 0 }).trimEnd()}` : JSON.stringify(v))
  const started = Date.now()
  const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : started + timeoutMs
  let state: WatchState = initialWatchState(options)
  const finish = (s: WatchState): number => {
    const elapsed = Date.now() - started
    if (json) out(serialize(watchResult(s, elapsed)))
    else out(formatSummary(s, elapsed))
    return exitCodeFor(s)
  }

  const nc = await connectOrFail(natsServers(flags.nats), await natsConnectOptions(flags), timeoutMs)
  let msgs: ConsumerMessages | undefined
  let stopped = false
  const stop = () => {
    stopped = true
    msgs?.stop()
  }
  let timedOut = false
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true
          stop()
        }, timeoutMs)
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    // the NATS client loads only when the command runs, so other commands start fast
    const { jetstream, jetstreamManager, DeliverPolicy } = await import('@nats-io/jetstream')
    const jsm = await jetstreamManager(nc, { checkAPI: false })
    const lastSeq = await streamLastSeq(jsm, deadline)
    if (lastSeq === undefined || stopped) {
      if (!json) out(`stream ${EVENTS_STREAM} not found (is the reconciler running?)`)
      return finish(hasTarget(options) && timeoutMs !== undefined ? timeoutWatch(state, timeoutMs) : state)
    }
    let startSeq = lastSeq + 1
    if (options.commit) {
      const sha = await resolveSha(jsm, options.commit)
      state = { ...state, sha }
      const first = FULL_SHA.test(sha) ? await startSeqOf(jsm, sha) : undefined
      if (first === undefined)
        process.stderr.write(
          `commit ${sha} is not on stream ${EVENTS_STREAM} yet: waiting for its events${timeoutMs === undefined ? '' : ` up to ${flags.timeout ?? '60s'}`} ` +
            '(is it pushed to the branch the reconciler follows? `zonegate reconcile` runs a pass now)\n',
        )
      startSeq = first ?? startSeq
    }
    const consumer = await jetstream(nc).consumers.get(EVENTS_STREAM, {
      filter_subjects: EVENTS_SUBJECTS,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: startSeq,
    })
    msgs = await consumer.consume()
    if (stopped) msgs.stop()
    for await (const m of msgs) {
      const event = parseEvent(m.string())
      if (!event || !isRelevant(state, event)) continue
      state = stepWatch(state, event)
      if (json) out(serialize(event))
      else
        for (const [i, line] of formatEvent(event).entries())
          out(`${i === 0 ? eventClock(event.time) : ' '.repeat(13)}  ${line}`)
      if (state.outcome && hasTarget(options)) {
        msgs.stop()
        break
      }
    }
    if (!state.outcome && timedOut && hasTarget(options) && timeoutMs !== undefined)
      state = timeoutWatch(state, timeoutMs)
    return finish(state)
  } finally {
    if (timer) clearTimeout(timer)
    process.removeListener('SIGINT', stop)
    process.removeListener('SIGTERM', stop)
    await nc.close().catch(() => {})
  }
}

/** `02:40:01.123Z`: the event's time of day (UTC), or spaces when it has none. Pure. */
export function eventClock(time: string | undefined): string {
  const m = time ? /T(\d\d:\d\d:\d\d)(\.\d+)?/.exec(time) : null
  if (!m) return ' '.repeat(13)
  return `${m[1]}${(m[2] ?? '.000').slice(0, 4).padEnd(4, '0')}Z`
}

function println(line: string): void {
  process.stdout.write(`${line}\n`)
}
