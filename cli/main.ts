#!/usr/bin/env node
import { Command, CommanderError } from 'commander'
import { registerEgressCommands } from '../egress/cli/index.js'
import { registerReconcilerCommands } from '../reconciler/cli/index.js'
import { Exit, UsageError } from './common.js'

/**
 * The `zonegate` CLI: one binary with subcommands (DESIGN.md §5). This is the only file that imports both
 * reconciler/ and egress/.
 */
export function buildProgram(): Command {
  const program = new Command('zonegate')
    .description('GitOps control plane and SNI data plane for zone egress')
    .version(process.env.npm_package_version ?? '0.1.0')
    .showHelpAfterError()
    .exitOverride()
  registerReconcilerCommands(program)
  registerEgressCommands(program)
  return program
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with exitCode 0; anything else commander rejects is a usage error.
      process.exitCode = err.exitCode === 0 ? Exit.Ok : Exit.Usage
      return
    }
    if (err instanceof UsageError) {
      process.stderr.write(`zonegate: ${err.message}\n`)
      process.exitCode = Exit.Usage
      return
    }
    process.stderr.write(`zonegate: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = Exit.Usage
  }
}

await main(process.argv)
