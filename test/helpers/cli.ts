import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { waitFor } from './procfile.js'

/** The built CLI (dist/ is built once by vitest's global setup, test/helpers/global-build.ts). */
export const CLI_PATH = resolve(import.meta.dirname, '../../dist/cli/main.js')

export interface CliResult {
  /** Exit code; -1 when the process was killed (timeout) or did not start. */
  code: number
  stdout: string
  stderr: string
  /** Wall time of the run. */
  ms: number
}

/**
 * Runs `node dist/cli/main.js ...args` as a child process and resolves with its exit code, output and duration;
 * never rejects. `env` is added to this process's environment (a value `''` clears a variable for the CLI).
 */
export function runCli(
  args: string[],
  o: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CliResult> {
  const t0 = Date.now()
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI_PATH, ...args],
      { timeout: o.timeoutMs ?? 30_000, env: { ...process.env, ...o.env } },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0
        done({ code: typeof code === 'number' ? code : -1, stdout, stderr, ms: Date.now() - t0 })
      },
    )
  })
}

/** A long-running CLI child process and the tail of what it printed (for failure messages). */
export interface CliProcess {
  child: ChildProcess
  /** The last 20,000 characters of its stdout and stderr. */
  output(): string
}

/** Starts the built CLI with `args` (LOG_LEVEL=info, plus `env`), keeping the tail of its output. */
export function spawnCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
  })
  let out = ''
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  return { child, output: () => out }
}

/**
 * The arguments of `zonegate reconciler` as the failover and fault tests run it: a local repository, every NATS
 * URL, admin HTTP on a random loopback port, the poll interval and lease timing, a cache folder and an id.
 */
export function reconcilerArgs(o: {
  repo: string
  nats: readonly string[]
  cacheDir: string
  id: string
  interval: string
  leaseTtl: string
  leaseRenew?: string
}): string[] {
  return [
    'reconciler',
    ...['--repo', o.repo],
    ...o.nats.flatMap((u) => ['--nats', u]),
    ...['--http', '127.0.0.1:0', '--interval', o.interval, '--lease-ttl', o.leaseTtl],
    ...(o.leaseRenew ? ['--lease-renew', o.leaseRenew] : []),
    ...['--cache-dir', o.cacheDir, '--id', o.id],
  ]
}

/** A `zonegate egress` child of the built CLI (JSON logs), once its listener and admin server are up. */
export interface CliEgress {
  child: ChildProcess
  /** Everything it printed so far (stdout and stderr). */
  output(): string
  /** Its JSON log lines so far. */
  logLines(): Record<string, unknown>[]
  /** The port of its listener and the URL of its admin server, read from its `listener up` / `admin up` lines. */
  port: number
  adminUrl: string
  /** Resolves with its exit code. */
  exit: Promise<number | null>
}

/**
 * Starts `zonegate egress ...args` (LOG_LEVEL=info unless `logLevel`, LOG_FORMAT=json; killed if this process
 * exits) and waits up to `timeoutMs` for its listener and admin server; the arguments must include `--listen` and
 * `--admin`.
 */
export async function startCliEgress(args: string[], timeoutMs = 30_000, logLevel = 'info'): Promise<CliEgress> {
  const child = spawn(process.execPath, [CLI_PATH, 'egress', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: logLevel, LOG_FORMAT: 'json' },
  })
  process.once('exit', () => child.kill('SIGKILL'))
  let out = ''
  const keep = (d: Buffer) => {
    out += d.toString()
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  const logLines = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  await waitFor('listener and admin up', () => /"admin up"/.test(out) && /"listener up"/.test(out), timeoutMs)
  const lines = logLines()
  const listen = String(lines.find((l) => l.msg === 'listener up')!.listen)
  return {
    child,
    output: () => out,
    logLines,
    port: Number(listen.split(':').pop()),
    adminUrl: `http://${String(lines.find((l) => l.msg === 'admin up')!.admin)}`,
    exit,
  }
}
