import type { Command } from 'commander'
import { registerRolloutCommand } from './rollout.js'

/** Registers the control-plane subcommands: validate, compile, diff, reconciler, reconcile, status, rollout. */
export function registerReconcilerCommands(program: Command): void {
  void program
  registerRolloutCommand(program)
}
