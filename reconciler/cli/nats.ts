import type { Command } from 'commander'
import { parseDuration, parseReplicas } from '../../lib/common.js'
import { addNatsOptions, type NatsFlags } from '../../lib/nats-connect.js'
import { connectCommandBus } from './command-bus.js'

/**
 * `zonegate nats migrate [--replicas N] [--nats URL]...`: brings the replica count of every bucket and the
 * events stream to N (default: 3 when the server reports a cluster, else 1), in place. Prints one line per
 * stream. Exits 0 when everything has N replicas, 1 when the server refused (message names the stream),
 * 2 on bad flags or when NATS cannot be reached (or the peer is not a NATS server).
 */
export function registerNatsCommand(program: Command): void {
  const nats = program.command('nats').description('maintenance of zonegate’s NATS layout')
  addNatsOptions(
    nats
      .command('migrate')
      .description('set the replica count of every zonegate bucket and the events stream (in place)')
      .option('--replicas <n>', 'replicas wanted (default: 3 when the server is clustered, else 1)'),
  )
    .option('--timeout <duration>', 'how long to wait for NATS to answer (at most 5s is used)', '5s')
    .action(async (opts: { replicas?: string; timeout: string } & NatsFlags) => {
      const replicas = opts.replicas === undefined ? undefined : parseReplicas(opts.replicas)
      const { connectBudgetMs } = await import('../../lib/nats-probe.js')
      const bus = await connectCommandBus(opts, connectBudgetMs(parseDuration(opts.timeout, '--timeout')))
      const [{ defaultReplicas }, { migrateReplicas }] = await Promise.all([
        import('../transport/nats-bus.js'),
        import('../transport/nats-migrate.js'),
      ])
      try {
        const want = replicas ?? defaultReplicas(bus.nc.info)
        const r = await migrateReplicas(bus, want)
        for (const c of r.changed) process.stdout.write(`${c.stream}: replicas ${c.from} → ${c.to}\n`)
        for (const s of r.unchanged) process.stdout.write(`${s}: replicas ${want} (unchanged)\n`)
        for (const s of r.missing) process.stdout.write(`${s}: not created yet\n`)
      } catch (err) {
        process.stderr.write(`zonegate: nats migrate: ${(err as Error).message}\n`)
        process.exitCode = 1
      } finally {
        await bus.close()
      }
    })
}
