import type { Command } from 'commander'
import { natsOption, natsServers, outputOption } from '../../cli/common.js'
import type { ReconcilerStatus } from '../../schemas/status.js'
import type { Bus } from '../transport/nats-bus.js'
import type { PublishedEntry } from '../transport/nats-publisher.js'
import type { InstanceRecord } from '../transport/status-store.js'

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
      // Loaded on use: keeps pino and the NATS client out of the start-up of every other command.
      const [{ pino }, { connectBus }, { readPublishedTables }, { readInstances, readStatus }, view] =
        await Promise.all([
          import('pino'),
          import('../transport/nats-bus.js'),
          import('../transport/nats-publisher.js'),
          import('../transport/status-store.js'),
          import('./status-view.js'),
        ])
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
        const v = view.buildStatusView((stored?.status ?? null) as ReconcilerStatus | null, tables, instances)
        process.stdout.write(opts.output === 'json' ? `${JSON.stringify(v, null, 2)}\n` : view.formatStatusText(v))
      } finally {
        await bus.close()
      }
    })
}
