import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, readFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { join, resolve } from 'node:path'

/**
 * Runs the processes of the project's Procfile the way foreman does (`sh -c`, `PORT`, `PS`, own process
 * group), with commands rewritten for tests: fixed addresses and paths replaced (random ports, scratch
 * folders), extra arguments appended. Stops by pid: SIGTERM to the process group, SIGKILL after a grace
 * period. Also starts foreman itself (`startForeman`) for tests of the Procfile as a whole.
 */

export const repoRoot = resolve(import.meta.dirname, '../..')

export interface ProcfileEntry {
  /** Process type (`egress`). */
  name: string
  command: string
  /** 0-based position in the Procfile (foreman's PORT = base + 100 × index + instance − 1). */
  index: number
}

/** Parses Procfile text: `name: command` lines; blank lines and `#` comments ignored. */
export function parseProcfile(text: string): ProcfileEntry[] {
  const out: ProcfileEntry[] = []
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_-]+):\s*(.+)$/.exec(line.trim())
    if (m && !line.trimStart().startsWith('#')) out.push({ name: m[1]!, command: m[2]!, index: out.length })
  }
  return out
}

/** Reads and parses a Procfile (default: the repository's). */
export function readProcfile(path = resolve(repoRoot, 'Procfile')): ProcfileEntry[] {
  return parseProcfile(readFileSync(path, 'utf8'))
}

/** foreman's PORT for a process type and instance (1-based). */
export const foremanPort = (base: number, entry: ProcfileEntry, instance = 1) => base + 100 * entry.index + instance - 1

export interface RunningProcess {
  /** `egress.2`: type and instance, as foreman's `PS`. */
  ps: string
  pid: number
  port: number
  command: string
  /** stdout + stderr so far (last 64 KiB). */
  output(): string
  /** Resolves with the exit code (or null when killed by a signal). */
  exited: Promise<number | null>
  /** SIGTERM to the process group, SIGKILL after graceMs (default 5000). Resolves when it has exited. */
  stop(graceMs?: number): Promise<number | null>
}

export interface StartOptions {
  cwd?: string
  /** 1-based instance number (PS=name.instance). */
  instance?: number
  /** PORT given to the process (default: foremanPort(basePort, entry, instance)). */
  port?: number
  basePort?: number
  /** Extra environment. */
  env?: Record<string, string>
  /** Every key found in the command is replaced by its value (e.g. `127.0.0.1:4222` → a random port). */
  replace?: Record<string, string>
  /** Appended to the command (after `replace`), shell-quoted. */
  args?: string[]
}

const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)
const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const c of live) killGroup(c, 'SIGKILL')
})

function killGroup(c: ChildProcess, signal: NodeJS.Signals): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return
  try {
    process.kill(-c.pid, signal)
  } catch {
    c.kill(signal)
  }
}

/** The command line a process will run, after foreman-style `$PORT`/`$PS` and the test's replacements. */
export function commandFor(entry: ProcfileEntry, env: Record<string, string>, opts: StartOptions = {}): string {
  let cmd = entry.command
  for (const [from, to] of Object.entries(opts.replace ?? {})) cmd = cmd.split(from).join(to)
  for (const [k, v] of Object.entries(env)) cmd = cmd.split(`$${k}`).join(v)
  if (opts.args?.length) cmd += ` ${opts.args.map(quote).join(' ')}`
  return cmd
}

/** Starts one Procfile process in its own process group (`sh -c`), like foreman. */
export function startProcess(entry: ProcfileEntry, opts: StartOptions = {}): RunningProcess {
  const instance = opts.instance ?? 1
  const port = opts.port ?? foremanPort(opts.basePort ?? 5000, entry, instance)
  const ps = `${entry.name}.${instance}`
  const env = { PORT: String(port), PS: ps, ...(opts.env ?? {}) }
  const command = commandFor(entry, env, opts)
  const child = spawn('/bin/sh', ['-c', command], {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/local/sbin`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  live.add(child)
  let out = ''
  // ZONEGATE_TEST_LOG_DIR: the whole output also goes to <dir>/<ps>-<pid>.log (the tail kept here is 64 KiB)
  const logDir = process.env.ZONEGATE_TEST_LOG_DIR
  const file = logDir ? createWriteStream(join(logDir, `${ps}-${child.pid ?? 'x'}.log`), { flags: 'a' }) : undefined
  const append = (d: Buffer) => {
    out = (out + d.toString()).slice(-65536)
    file?.write(d)
  }
  child.stdout?.on('data', append)
  child.stderr?.on('data', append)
  child.once('close', () => file?.end())
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      live.delete(child)
      r(code)
    }),
  )
  return {
    ps,
    pid: child.pid ?? -1,
    port,
    command,
    output: () => out,
    exited,
    async stop(graceMs = 5000) {
      killGroup(child, 'SIGTERM')
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs)
      const code = await exited
      clearTimeout(timer)
      return code
    },
  }
}

/** Starts several instances of one process type (PS = name.1..n, PORT = base + 100 × index + n − 1). */
export function startInstances(entry: ProcfileEntry, count: number, opts: StartOptions = {}): RunningProcess[] {
  return Array.from({ length: count }, (_, i) => startProcess(entry, { ...opts, instance: i + 1, port: undefined }))
}

/** `foreman start -f <procfile> -m <formation> -p <base>` in cwd, as one RunningProcess (stop = SIGTERM foreman). */
export function startForeman(opts: {
  cwd: string
  procfile?: string
  formation?: string
  basePort?: number
  timeoutS?: number
  env?: Record<string, string>
}): RunningProcess {
  const args = ['start', '-f', opts.procfile ?? 'Procfile']
  if (opts.formation) args.push('-m', opts.formation)
  if (opts.basePort) args.push('-p', String(opts.basePort))
  if (opts.timeoutS) args.push('-t', String(opts.timeoutS))
  const entry: ProcfileEntry = { name: 'foreman', index: 0, command: `exec foreman ${args.map(quote).join(' ')}` }
  return startProcess(entry, { cwd: opts.cwd, port: opts.basePort ?? 5000, env: opts.env })
}

/** A free TCP port on 127.0.0.1 (bind 0, read, close; another process could take it in between). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const a = server.address()
  await new Promise<void>((r) => server.close(() => r()))
  return typeof a === 'object' && a ? a.port : 0
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls until `check` resolves true; throws `what` after timeoutMs. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await Promise.resolve(check()).catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(50)
  }
}

/** Waits until GET url answers 2xx (readiness URLs such as /readyz, /ready). */
export function waitForUrl(url: string, timeoutMs = 15_000): Promise<void> {
  return waitFor(url, async () => (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok, timeoutMs)
}

/** Waits until host:port accepts TCP connections. */
export function waitForPort(host: string, port: number, timeoutMs = 15_000): Promise<void> {
  return waitFor(`${host}:${port}`, () => tcpOpen(host, port), timeoutMs)
}

/** Waits until the process printed something matching `re`; throws with its output on timeout or exit. */
export async function waitForOutput(p: RunningProcess, re: RegExp, timeoutMs = 15_000): Promise<void> {
  let exited = false
  void p.exited.then(() => {
    exited = true
  })
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (re.test(p.output())) return
    if (exited || Date.now() > deadline)
      throw new Error(`${p.ps}: ${exited ? 'exited' : `no ${re} within ${timeoutMs} ms`}; output:\n${p.output()}`)
    await sleep(50)
  }
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = createConnection({ host, port })
    s.once('connect', () => {
      s.destroy()
      r(true)
    })
    s.once('error', () => r(false))
  })
}

/** Stops processes in reverse start order, each by pid (SIGTERM, then SIGKILL after graceMs). */
export async function stopAll(procs: RunningProcess[], graceMs = 5000): Promise<void> {
  for (const p of [...procs].reverse()) await p.stop(graceMs)
}
