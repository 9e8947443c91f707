import type { Command } from 'commander'
import {
  Exit,
  natsServers,
  natsUnreachableMessage,
  parseDuration,
  redactUrl,
  UsageError,
  withExamples,
} from '../../lib/common.js'
import { addNatsOptions, type NatsFlags, natsConnectOptions } from '../../lib/nats-connect.js'
import type { ZonegateEvent } from '../../schemas/events.js'

/** Exit codes of `zonegate reconcile` (docs/design.md §5): 0 resolved, 1 no reconciler / failed / timeout, 2 NATS. */
export const ReconcileExit = { Ok: Exit.Ok, Failed: Exit.Failed, Io: Exit.Io } as const

/** The progress line for a commit event seen while waiting for the reply, or undefined. Pure. */
export function progressLine(e: ZonegateEvent): string | undefined {
  switch (e.type) {
    case 'commit.fetched':
      return `◎ fetched ${e.revision}; validating and compiling`
    case 'commit.invalid':
      return `◎ ${e.revision} is invalid (${e.violations.length} violations); nothing is published`
    case 'commit.published':
      return `◎ published ${e.revision} to ${e.zones.map((z) => `${z.zone} (gen ${z.generation})`).join(', ') || 'no zone'}; waiting for the pass to finish`
    case 'commit.superseded':
      return `◎ ${e.revision} superseded by ${e.by}`
    default:
      return undefined
  }
}

/**
 * `zonegate reconcile [--nats URL]... [--timeout D]`: asks the active reconciler to run now
 * (`zonegate.cmd.reconcile`) and prints the revision it resolved, like `flux reconcile`; while it waits it
 * says what for (the commit events of the pass). Exit 1 with a message on stderr when no reconciler answers,
 * the reply is an error, or the timeout passes; 2 when NATS cannot be reached.
 */
export function registerReconcileCommand(program: Command): void {
  const cmd = addNatsOptions(
    program
      .command('reconcile')
      .description('ask the active reconciler to reconcile now and print the revision it resolved'),
  )
    .option('--timeout <duration>', 'how long to wait for the reconciler (e.g. 30s, 1m30s)', '60s')
    .action(async (opts: { timeout: string } & NatsFlags) => {
      const timeoutMs = parseDuration(opts.timeout, '--timeout')
      const servers = natsServers(opts.nats)
      const auth = await natsConnectOptions(opts)
      process.stderr.write(
        `► asking the active reconciler to reconcile (zonegate.cmd.reconcile at ${servers.map(redactUrl).join(', ')})\n`,
      )
      process.stderr.write(`◎ waiting up to ${opts.timeout} for it to fetch the branch and run a pass\n`)
      // Loaded on use: keeps the NATS client out of the start-up of every other command.
      const { requestReconcile, NatsUnreachable } = await import('../transport/reconcile-requests.js')
      try {
        const reply = await requestReconcile(
          servers,
          timeoutMs,
          (e) => {
            const line = progressLine(e as ZonegateEvent)
            if (line) process.stderr.write(`${line}\n`)
          },
          auth,
        )
        if (reply.ok) {
          process.stdout.write(`✔ reconciled revision ${reply.revision}\n`)
          process.exitCode = ReconcileExit.Ok
        } else {
          process.stderr.write(`✗ reconcile failed: ${reply.error}\n`)
          process.exitCode = ReconcileExit.Failed
        }
      } catch (err) {
        if (err instanceof NatsUnreachable) throw new UsageError(natsUnreachableMessage(servers, err.cause))
        if (err instanceof UsageError) throw err // the peer is not NATS (lib/nats-probe.ts)
        process.stderr.write(`✗ ${err instanceof Error ? err.message : String(err)}\n`)
        process.exitCode = ReconcileExit.Failed
      }
    })
  withExamples(cmd, [
    'zonegate reconcile                              # exit 0 resolved, 1 no reconciler / failed, 2 NATS down',
    'git push && zonegate reconcile && zonegate rollout watch --commit "$(git rev-parse HEAD)" --until converged',
  ])
}
