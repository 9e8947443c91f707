#!/usr/bin/env node
import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { Argument, Command, CommanderError } from 'commander'
import { registerEgressCommands } from '../egress/cli/index.js'
import {
  applyEnvironment,
  CommandFailed,
  Exit,
  formatStructured,
  logOptions,
  outputOption,
  packageVersion,
  UsageError,
  withExamples,
} from '../lib/common.js'
import { registerReconcilerCommands } from '../reconciler/cli/index.js'
import { registerAuthCommands } from './auth.js'
import { completionScript, SHELLS, type Shell } from './completion.js'

/**
 * The `zonegate` CLI: one binary with subcommands (docs/design.md §5). This is the only file that imports both
 * reconciler/ and egress/. Every option of every command also reads its environment variable
 * (lib/common.ts `applyEnvironment`: `ZONEGATE_<FLAG>`, `NATS_URL`, `NATS_CREDS`, `LOG_LEVEL`, `LOG_FORMAT`).
 */
export function buildProgram(): Command {
  const program = new Command('zonegate')
    .description('GitOps control plane and SNI data plane for zone egress')
    .version(packageVersion(), '-V, --version', 'print the version')
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError()
    .exitOverride()
  for (const o of logOptions()) program.addOption(o)
  withExamples(program, [
    'zonegate validate ./gitops                       # exit 0 valid, 1 invalid, 2 usage/IO',
    'zonegate compile ./gitops --zone zone-a -o yaml',
    'zonegate diff main HEAD --repo . || [ $? -eq 3 ]  # 3: the tables differ',
    'zonegate status --wait --timeout 2m              # gate CI on Ready',
    'zonegate events --since 1h --zone zone-a',
    'source <(zonegate completion bash)',
    '',
    'Every flag can also be set in the environment: --rollout-timeout 2m is ZONEGATE_ROLLOUT_TIMEOUT=2m;',
    '--nats is NATS_URL, --creds NATS_CREDS, --log-level LOG_LEVEL, --log-format LOG_FORMAT.',
    'Exit codes: 0 ok, 1 invalid / failed / not ready, 2 usage or I/O, 3 differ.',
  ])
  registerReconcilerCommands(program)
  registerEgressCommands(program)
  registerAuthCommands(program)
  registerVersionCommand(program)
  registerCompletionCommand(program)
  applyEnvironment(program)
  return program
}

/** `zonegate version [-o json|yaml]`: the package's version (and Node's). */
function registerVersionCommand(program: Command): void {
  program
    .command('version')
    .description("print zonegate's version")
    .addOption(outputOption())
    .action(async (opts: { output: 'text' | 'json' | 'yaml' }) => {
      const info = { version: packageVersion(), node: process.version, platform: `${process.platform}/${process.arch}` }
      process.stdout.write(
        opts.output === 'text'
          ? `zonegate ${info.version} (node ${info.node})\n`
          : await formatStructured(info, opts.output),
      )
    })
}

/** `zonegate completion bash|zsh|fish`. */
function registerCompletionCommand(program: Command): void {
  withExamples(
    program
      .command('completion')
      .description('print a shell completion script')
      .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(SHELLS))
      .action((shell: Shell) => {
        process.stdout.write(completionScript(program, shell))
      }),
    [
      'source <(zonegate completion bash)                       # this shell',
      'zonegate completion bash > /etc/bash_completion.d/zonegate',
      'zonegate completion zsh > ~/.zfunc/_zonegate      # with fpath+=(~/.zfunc) before compinit',
      'zonegate completion fish > ~/.config/fish/completions/zonegate.fish',
    ],
  )
}

/** The exit code and one-line message for an error that ended a command. Pure. */
export function exitFor(err: unknown): { code: number; message?: string } {
  if (err instanceof CommanderError) return { code: err.exitCode === 0 ? Exit.Ok : Exit.Usage }
  if (err instanceof UsageError) return { code: Exit.Usage, message: err.message }
  if (err instanceof CommandFailed) return { code: Exit.Failed, message: err.message }
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number }
  if (e?.code === 'EADDRINUSE' || e?.code === 'EACCES' || e?.code === 'EADDRNOTAVAIL') {
    const where = e.address !== undefined ? `${e.address}:${e.port}` : 'the address'
    const why =
      e.code === 'EADDRINUSE' ? 'is already in use' : e.code === 'EACCES' ? 'needs privileges' : 'is not local'
    return {
      code: Exit.Io,
      message: `cannot listen on ${where}: it ${why} (pick another port with the flag or stop the other process)`,
    }
  }
  if (typeof e?.code === 'string' && typeof e.syscall === 'string') return { code: Exit.Io, message: e.message }
  return { code: Exit.Failed, message: err instanceof Error ? err.message : String(err) }
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
  } catch (err) {
    const { code, message } = exitFor(err)
    if (message) process.stderr.write(`zonegate: ${message}\n`)
    process.exitCode = code
    // The command ended in an error: whatever it left open (a client socket to a peer that never answered)
    // must not keep the process alive. Unref'd, so a process with nothing left exits at once as usual.
    setTimeout(() => process.exit(code), 500).unref()
  }
}

/** True when this file is the program being run (not imported by a test). */
function isEntryPoint(): boolean {
  try {
    return process.argv[1] !== undefined && pathToFileURL(realpathSync(process.argv[1])).href === import.meta.url
  } catch {
    return false
  }
}

if (isEntryPoint()) await main(process.argv)
