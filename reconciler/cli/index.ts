import type { Command } from 'commander'
import { registerReconcileCommand } from './reconcile.js'
import { registerReconcilerCommand } from './reconciler.js'
import { registerRolloutCommand } from './rollout.js'
import { registerStatusCommand } from './status.js'
import { registerValidateCommand } from './validate.js'

/** Registers the control-plane subcommands: validate, compile, diff, reconciler, reconcile, status, rollout. */
export function registerReconcilerCommands(program: Command): void {
  void program
  registerValidateCommand(program)
  registerReconcilerCommand(program)
  registerReconcileCommand(program)
  registerStatusCommand(program)
  registerRolloutCommand(program)
}
