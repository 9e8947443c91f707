import type { Command } from 'commander'
import {
  Exit,
  formatStructured,
  type OutputFormat,
  outputOption,
  parseDuration,
  UsageError,
  withExamples,
} from '../../lib/common.js'
import { addNatsOptions, type NatsFlags } from '../../lib/nats-connect.js'
import type { ReconcilerStatus } from '../../schemas/status.js'
import { LEASE_KEY } from '../../schemas/subjects.js'
import type { Bus } from '../transport/nats-bus.js'
import type { PublishedEntry } from '../transport/nats-publisher.js'
import type { InstanceRecord } from '../transport/status-store.js'
import { connectCommandBus } from './command-bus.js'
import { statusReadiness } from './status-ready.js'
import type { StatusView } from './status-view.js'

/** What `p` resolves to, or `empty` when its bucket or stream is not created yet (no reconciler ran). */
async function orEmpty<T>(p: Promise<T>, empty: T): Promise<T> {
  try {
    return await p
  } catch (err) {
    const { isLayoutMissing } = await import('../transport/nats-errors.js')
    if (isLayoutMissing(err)) return empty
    throw err
  }
}

interface StatusFlags extends NatsFlags {
  output: OutputFormat
  wait?: boolean
  watch?: boolean
  timeout: string
}

/** The status view, what the lease says about the active reconciler, and the readiness verdict. */
export interface StatusReading {
  view: StatusView
  active: string | null
  ready: boolean
  reason: string
}

/** Reads the status once from the buckets (missing buckets read as empty). */
export async function readStatusView(bus: Bus): Promise<StatusReading> {
  const [{ readPublishedTables }, { readInstances, readStatus }, view] = await Promise.all([
    import('../transport/nats-publisher.js'),
    import('../transport/status-store.js'),
    import('./status-view.js'),
  ])
  const [stored, tables, instances, lease] = await Promise.all([
    orEmpty(readStatus(bus), null),
    orEmpty(readPublishedTables(bus), new Map<string, PublishedEntry>()),
    orEmpty(readInstances(bus), [] as InstanceRecord[]),
    orEmpty(bus.kv.leases.get(LEASE_KEY), null),
  ])
  const v = view.buildStatusView((stored?.status ?? null) as ReconcilerStatus | null, tables, instances, Date.now())
  const active = lease && lease.operation === 'PUT' ? lease.string() : null
  return { view: v, active, ...statusReadiness(v, active) }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * `zonegate status [-o json|yaml] [--wait | --watch] [--timeout D] [--nats URL]...`: the reconciler's
 * conditions and revisions (KV zonegate-status), per-zone generation and digest (KV zonegate-tables), live
 * instances and whether each serves the published digest (KV zonegate-instances), and the violations of a
 * stalled commit. Exit 0 when Ready (status-ready.ts), 1 when not (the reason on stderr), 2 when NATS cannot
 * be reached. `--wait` polls until Ready or `--timeout` (exit 1); `--watch` prints the status again each time
 * it changes until Ctrl-C or `--timeout`, exiting with the last verdict.
 */
export function registerStatusCommand(program: Command): void {
  const cmd = addNatsOptions(
    program
      .command('status')
      .description('show reconciler conditions, per-zone generation and digest, and live egress instances'),
  )
    .addOption(outputOption())
    .option('--wait', 'wait until the reconciler is Ready (or --timeout), then print the status')
    .option('--watch', 'print the status again whenever it changes (until Ctrl-C or --timeout)')
    .option('--timeout <duration>', 'with --wait/--watch: give up after this long', '5m')
    .action(async (opts: StatusFlags) => {
      if (opts.wait && opts.watch) throw new UsageError('--wait and --watch exclude each other')
      const timeoutMs = parseDuration(opts.timeout, '--timeout')
      const intervalMs = 1000
      // Loaded on use: keeps the views and the NATS client out of the start-up of every other command.
      const view = await import('./status-view.js')
      const { connectBudgetMs } = await import('../../lib/nats-probe.js')
      const bus = await connectCommandBus(opts, connectBudgetMs(timeoutMs))
      const render = async (r: StatusReading) =>
        opts.output === 'text'
          ? view.formatStatusText(r.view)
          : await formatStructured({ ...r.view, ready: r.ready, reason: r.reason }, opts.output, opts.watch === true)
      const deadline = Date.now() + timeoutMs
      let stop = false
      const onSignal = () => {
        stop = true
      }
      process.once('SIGINT', onSignal)
      try {
        let r = await readStatusView(bus)
        if (opts.wait) {
          let said = ''
          while (!r.ready && Date.now() < deadline && !stop) {
            if (r.reason !== said) process.stderr.write(`◎ waiting for Ready: ${r.reason}\n`)
            said = r.reason
            await sleep(intervalMs)
            r = await readStatusView(bus)
          }
        }
        if (opts.watch) {
          let last = ''
          for (;;) {
            const text = await render(r)
            if (text !== last) {
              if (opts.output === 'text') process.stdout.write(`${last ? '\n' : ''}── ${new Date().toISOString()}\n`)
              process.stdout.write(text)
              last = text
            }
            if (stop || Date.now() >= deadline) break
            await sleep(intervalMs)
            r = await readStatusView(bus)
          }
        } else process.stdout.write(await render(r))
        if (!r.ready) process.stderr.write(`zonegate: not ready: ${r.reason}\n`)
        process.exitCode = r.ready ? Exit.Ok : Exit.NotReady
      } finally {
        process.removeListener('SIGINT', onSignal)
        await bus.close()
      }
    })
  withExamples(cmd, [
    'zonegate status                            # exit 0 Ready, 1 not Ready, 2 NATS unreachable',
    'zonegate status --wait --timeout 2m        # gate a CI job on the reconciler being Ready',
    'zonegate status --watch',
    'zonegate status -o json | jq ".zones[].instances[] | select(.serving != \\"current\\")"',
  ])
}
