import type { Command } from 'commander'
import { registerProbeCommand } from './probe.js'

/** Registers the data-plane subcommands: egress, probe. */
export function registerEgressCommands(program: Command): void {
  void program
  registerProbeCommand(program)
}
