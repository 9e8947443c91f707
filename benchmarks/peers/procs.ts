/**
 * Process handling for the proxy-throughput benchmark: start a server in its own process group (optionally under
 * `taskset`), wait for its port, stop it by process group (SIGTERM, then SIGKILL after 3 s), and stop everything
 * still running on exit, SIGINT or SIGTERM. Also runs a bounded one-shot command and returns its CPU time.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { openSync, readFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'

export interface Server {
  name: string
  pgid: number
  child: ChildProcess
  exited: Promise<number | null>
}

const running = new Set<Server>()
const cleanups: (() => void)[] = []
let hooked = false

/** Registers a synchronous cleanup (e.g. removing the temp directory) run on SIGINT/SIGTERM. */
export function onInterrupt(fn: () => void): void {
  cleanups.push(fn)
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {}
}

function hookExit(): void {
  if (hooked) return
  hooked = true
  process.on('exit', () => {
    for (const s of running) killGroup(s.pgid, 'SIGKILL')
  })
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const s of running) killGroup(s.pgid, 'SIGKILL')
      for (const fn of cleanups) {
        try {
          fn()
        } catch {}
      }
      process.exit(130)
    })
  }
}

/** `taskset -c CPU` prefix when `cpu` is set. */
export function pinned(cpu: number | undefined, argv: string[]): string[] {
  return cpu === undefined ? argv : ['taskset', '-c', String(cpu), ...argv]
}

/**
 * Starts `argv` detached (own process group), stdout+stderr to `<logDir>/<name>.log`, then waits until
 * 127.0.0.1:`port` accepts (≤ 10 s). Throws with the log's tail if the process exits or the port never opens.
 */
export async function startServer(
  name: string,
  argv: string[],
  opts: { logDir: string; port: number; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<Server> {
  hookExit()
  const logFile = join(opts.logDir, `${name}.log`)
  const fd = openSync(logFile, 'a')
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  })
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => resolve(code))
    child.on('error', () => resolve(-1))
  })
  const server: Server = { name, pgid: child.pid ?? -1, child, exited }
  if (child.pid === undefined) throw new Error(`${name}: could not start ${argv[0]}`)
  running.add(server)
  const deadline = Date.now() + 10_000
  let dead = false
  void exited.then(() => {
    dead = true
  })
  while (Date.now() < deadline && !dead) {
    if (await portOpen(opts.port)) return server
    await sleep(100)
  }
  await stopServer(server)
  let tail = ''
  try {
    tail = readFileSync(logFile, 'utf8').slice(-2000)
  } catch {}
  throw new Error(`${name} did not listen on 127.0.0.1:${opts.port} within 10 s${dead ? ' (it exited)' : ''}\n${tail}`)
}

/** SIGTERM to the process group, SIGKILL after 3 s; resolves when the leader has exited. */
export async function stopServer(s: Server): Promise<void> {
  killGroup(s.pgid, 'SIGTERM')
  const done = await Promise.race([s.exited.then(() => true), sleep(3000).then(() => false)])
  if (!done) {
    killGroup(s.pgid, 'SIGKILL')
    await Promise.race([s.exited, sleep(2000)])
  }
  killGroup(s.pgid, 'SIGKILL') // stray workers (nginx)
  running.delete(s)
}

/** Stops every server started here that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((s) => stopServer(s)))
}

/** True when a TCP connect to 127.0.0.1:port succeeds within 1 s. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    const t = setTimeout(() => {
      sock.destroy()
      resolve(false)
    }, 1000)
    sock.once('connect', () => {
      clearTimeout(t)
      sock.destroy()
      resolve(true)
    })
    sock.once('error', () => {
      clearTimeout(t)
      resolve(false)
    })
  })
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
  /** utime+stime of the command and its waited-for children, in clock ticks (USER_HZ). */
  ticks: number
}

/**
 * Runs `argv` to completion (killed after `timeoutMs`) under `sh`, which reads its own /proc/self/stat
 * cutime+cstime afterwards, so the command's CPU time is known even though it has exited.
 */
export function runMeasured(
  argv: string[],
  timeoutMs: number,
  statFile: string,
  env: Record<string, string> = {},
): Promise<RunResult> {
  hookExit()
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', '"$@"; rc=$?; cat /proc/$$/stat > "$STATFILE"; exit $rc', 'sh', ...argv], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env, STATFILE: statFile },
    })
    const fake: Server = { name: argv[0]!, pgid: child.pid ?? -1, child, exited: Promise.resolve(null) }
    running.add(fake)
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d) => {
      stdout += d
    })
    child.stderr!.on('data', (d) => {
      stderr += d
    })
    const timer = setTimeout(() => killGroup(fake.pgid, 'SIGKILL'), timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      running.delete(fake)
      let ticks = 0
      try {
        const f = statFields(readFileSync(statFile, 'utf8'))
        ticks = Number(f[13]) + Number(f[14]) // cutime, cstime (fields 16, 17)
      } catch {}
      resolve({ code, stdout, stderr, ticks })
    })
  })
}

/** /proc/<pid>/stat split into fields after the command name; index 0 = field 3 (state). */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}
