import type { Command } from 'commander'
import { registerEgressCommand } from './egress.js'
import { registerProbeCommand } from './probe.js'

/** Registers the data-plane subcommands: egress (probe comes later). */
export function registerEgressCommands(program: Command): void {
  registerEgressCommand(program)
  registerProbeCommand(program)
}
