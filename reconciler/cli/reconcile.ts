import type { Command } from 'commander'
import { natsOption, natsServers, parseDuration } from '../../cli/common.js'

/** Exit codes of `zonegate reconcile` (DESIGN.md §5): 0 resolved, 1 no reconciler / failed / timeout. */
export const ReconcileExit = { Ok: 0, Failed: 1 } as const

/**
 * `zonegate reconcile [--nats URL]... [--timeout D]`: asks the active reconciler to run now
 * (`zonegate.cmd.reconcile`) and prints the revision it resolved, like `flux reconcile`. Exits 1 with a
 * message on stderr when no reconciler answers, the reply is an error, or the timeout passes.
 */
export function registerReconcileCommand(program: Command): void {
  program
    .command('reconcile')
    .description('ask the active reconciler to reconcile now and print the revision it resolved')
    .addOption(natsOption())
    .option('--timeout <duration>', 'how long to wait for the reconciler (e.g. 30s, 2m)', '60s')
    .action(async (opts: { nats?: string[]; timeout: string }) => {
      const timeoutMs = parseDuration(opts.timeout, '--timeout')
      const servers = natsServers(opts.nats)
      process.stderr.write('► asking the active reconciler to reconcile\n')
      try {
        // Loaded on use: keeps the NATS client out of the start-up of every other command.
        const { requestReconcile } = await import('../transport/reconcile-requests.js')
        const reply = await requestReconcile(servers, timeoutMs)
        if (reply.ok) {
          process.stdout.write(`✔ reconciled revision ${reply.revision}\n`)
          process.exitCode = ReconcileExit.Ok
        } else {
          process.stderr.write(`✗ reconcile failed: ${reply.error}\n`)
          process.exitCode = ReconcileExit.Failed
        }
      } catch (err) {
        process.stderr.write(`✗ ${err instanceof Error ? err.message : String(err)}\n`)
        process.exitCode = ReconcileExit.Failed
      }
    })
}
