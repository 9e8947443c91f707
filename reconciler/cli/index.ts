import type { Command } from 'commander'
import { registerCertCommand } from './cert.js'
import { registerCompileCommand } from './compile.js'
import { registerDiffCommand } from './diff.js'
import { registerEventsCommand } from './events.js'
import { registerNatsCommand } from './nats.js'
import { registerReconcileCommand } from './reconcile.js'
import { registerReconcilerCommand } from './reconciler.js'
import { registerRolloutCommand } from './rollout.js'
import { registerSigningKeyCommand } from './signing-key.js'
import { registerStatusCommand } from './status.js'
import { registerValidateCommand } from './validate.js'

/** Registers the control-plane subcommands: validate, compile, diff, reconciler, reconcile, status, rollout, events,
 * cert, nats, signing-key. */
export function registerReconcilerCommands(program: Command): void {
  registerValidateCommand(program)
  registerCompileCommand(program)
  registerDiffCommand(program)
  registerReconcilerCommand(program)
  registerReconcileCommand(program)
  registerStatusCommand(program)
  registerRolloutCommand(program)
  registerEventsCommand(program)
  registerCertCommand(program)
  registerNatsCommand(program)
  registerSigningKeyCommand(program)
}
