import type { Command } from 'commander'
import { registerEgressCommand } from './egress.js'
import { registerProbeCommand } from './probe.js'

/** Registers the data-plane subcommands: egress, probe. */
export function registerEgressCommands(program: Command): void {
  registerEgressCommand(program)
  registerProbeCommand(program)
}
