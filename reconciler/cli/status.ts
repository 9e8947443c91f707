import type { Command } from 'commander'
import { pino } from 'pino'
import { natsOption, natsServers, outputOption } from '../../cli/common.js'
import type { ReconcilerStatus } from '../../schemas/status.js'
import { type Bus, connectBus } from '../transport/nats-bus.js'
import { type PublishedEntry, readPublishedTables } from '../transport/nats-publisher.js'
import { type InstanceRecord, readInstances, readStatus } from '../transport/status-store.js'
import { buildStatusView, formatStatusText } from './status-view.js'

/** Bucket or stream not created yet: nothing to show, not an error. */
function isMissing(err: unknown): boolean {
  const text = err instanceof Error ? `${err.message} ${err.cause instanceof Error ? err.cause.message : ''}` : ''
  return /not found/i.test(text)
}

async function orEmpty<T>(p: Promise<T>, empty: T): Promise<T> {
  try {
    return await p
  } catch (err) {
    if (isMissing(err)) return empty
    throw err
  }
}

/**
 * `zonegate status [--output json] [--nats URL]...`: the reconciler's conditions and revisions (KV
 * zonegate-status), per-zone generation and digest (KV zonegate-tables), live instances and whether each
 * serves the published digest (KV zonegate-instances), and the violations of a stalled commit. Exits 0; 1
 * with a message when NATS cannot be reached.
 */
export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('show reconciler conditions, per-zone generation and digest, and live egress instances')
    .addOption(natsOption())
    .addOption(outputOption())
    .action(async (opts: { nats?: string[]; output: 'text' | 'json' }) => {
      const servers = natsServers(opts.nats)
      const log = pino({ level: process.env.LOG_LEVEL ?? 'silent' }, pino.destination(2))
      let bus: Bus
      try {
        bus = await connectBus({
          servers,
          name: 'zonegate-cli',
          log,
          waitOnFirstConnect: false,
          maxReconnectAttempts: 0,
        })
      } catch (err) {
        process.stderr.write(`zonegate: cannot connect to NATS at ${servers.join(', ')}: ${(err as Error).message}\n`)
        process.exitCode = 1
        return
      }
      try {
        const [stored, tables, instances] = await Promise.all([
          orEmpty(readStatus(bus), null),
          orEmpty(readPublishedTables(bus), new Map<string, PublishedEntry>()),
          orEmpty(readInstances(bus), [] as InstanceRecord[]),
        ])
        const view = buildStatusView((stored?.status ?? null) as ReconcilerStatus | null, tables, instances)
        process.stdout.write(opts.output === 'json' ? `${JSON.stringify(view, null, 2)}\n` : formatStatusText(view))
      } finally {
        await bus.close()
      }
    })
}
