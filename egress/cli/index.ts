import type { Command } from 'commander'

/** Registers the data-plane subcommands: egress, probe. */
export function registerEgressCommands(program: Command): void {
  void program
}
