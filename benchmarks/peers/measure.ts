/**
 * One measurement of one workload through one target, with CPU accounting (proxy and backend process groups,
 * load generator, rest of the machine) and the interference guard of the reference method: wait for a quiet
 * machine, re-run (≤ retries) when other work used more than `maxOtherPct` of the machine during the run, or when
 * the hypervisor stole more than `maxStealPct` of it (other guests on the same host).
 */
import { join } from 'node:path'
import { groupTicks, machineTicks, TICKS_PER_SECOND, waitForQuiet } from './cpu.js'
import { pinned, runMeasured } from './procs.js'

export const Workload = { Conn: 'conn', ConnRaw: 'connraw', Ka: 'ka', Bulk: 'bulk' } as const
export type Workload = (typeof Workload)[keyof typeof Workload]
export const WORKLOADS: Workload[] = ['conn', 'connraw', 'ka', 'bulk']

export interface Sample {
  rate: number
  p50: number
  p99: number
  errors: number
  requests: number
  bytes: number
  seconds: number
  /** Proxy process group CPU seconds (0 for direct). */
  proxyCpu: number
  backendCpu: number
  loadCpu: number
  /** CPU used by everything else, in % of the whole machine. */
  otherPct: number
  /** CPU time the hypervisor gave to other guests while this machine wanted it, in % of the whole machine. */
  stealPct: number
  retries: number
  flagged: boolean
}

export interface LoadSetup {
  dir: string
  tlsconn: string | undefined
  helloFile: string
  luaFile: string
  /** CPU for the load generator (undefined = no pinning). */
  cpu: number | undefined
  conns: { conn: number; ka: number; bulk: number }
}

/** The load generator's argv and env for a workload against `port`. */
export function loadCommand(
  w: Workload,
  port: number,
  seconds: number,
  s: LoadSetup,
): { argv: string[]; env: Record<string, string> } {
  const d = String(seconds)
  const wrk = (c: number, path: string, extra: string[] = []) => ({
    argv: pinned(s.cpu, [
      'wrk',
      '-t',
      '1',
      '-c',
      String(c),
      '-d',
      `${d}s`,
      '--timeout',
      '5s',
      '-s',
      s.luaFile,
      ...extra,
      `https://a.test:${port}${path}`,
    ]),
    env: { BENCH_CONNECT: `127.0.0.1:${port}` },
  })
  switch (w) {
    case 'conn':
      if (!s.tlsconn) return wrk(s.conns.conn, '/small', ['-H', 'Connection: close'])
      return {
        argv: pinned(s.cpu, [
          s.tlsconn,
          '-a',
          '127.0.0.1',
          '-p',
          String(port),
          '-s',
          'a.test',
          '-P',
          '/small',
          '-c',
          String(s.conns.conn),
          '-d',
          d,
        ]),
        env: {},
      }
    case 'connraw':
      if (!s.tlsconn) throw new Error('connraw needs the C client (gcc + libssl-dev)')
      return {
        argv: pinned(s.cpu, [
          s.tlsconn,
          '-R',
          '-f',
          s.helloFile,
          '-n',
          '1024',
          '-a',
          '127.0.0.1',
          '-p',
          String(port),
          '-c',
          String(s.conns.conn),
          '-d',
          d,
        ]),
        env: {},
      }
    case 'ka':
      return wrk(s.conns.ka, '/small')
    case 'bulk':
      return wrk(s.conns.bulk, '/large')
  }
}

interface LoadFigures {
  rate: number
  p50: number
  p99: number
  errors: number
  requests: number
  bytes: number
  seconds: number
}

/** Parses the JSON line printed by tlsconn or by sni.lua's done(). Throws when there is none. */
export function parseLoadOutput(stdout: string, seconds: number): LoadFigures {
  const line = stdout.split('\n').find((l) => l.startsWith('{"requests"'))
  if (!line) throw new Error(`load generator printed no result: ${stdout.slice(-500)}`)
  const j = JSON.parse(line) as Record<string, number>
  if ('duration_us' in j) {
    const secs = j.duration_us! / 1e6
    return {
      rate: j.requests! / secs,
      p50: j.p50_us! / 1000,
      p99: j.p99_us! / 1000,
      errors: j.connect_errors! + j.read_errors! + j.write_errors! + j.status_errors! + j.timeouts!,
      requests: j.requests!,
      bytes: j.bytes!,
      seconds: secs,
    }
  }
  return {
    rate: j.rate!,
    p50: j.p50_ms!,
    p99: j.p99_ms!,
    errors: j.errors!,
    requests: j.requests!,
    bytes: j.bytes!,
    seconds: seconds,
  }
}

export interface GuardOptions {
  maxOtherPct: number
  /** A run during which the hypervisor stole more than this (in % of the whole machine) is re-run too. */
  maxStealPct: number
  retries: number
  quietWaitMs: number
  /** Total waiting allowed over the whole run (shared, decremented), so a busy box cannot stall the run for hours. */
  quietBudget: { remainingMs: number }
  ncpu: number
}

/** Waits for a quiet machine (other work and steal under the guard's limits) within what is left of the budget. */
export async function waitQuietWithinBudget(guard: GuardOptions): Promise<void> {
  const wait = Math.min(guard.quietWaitMs, guard.quietBudget.remainingMs)
  if (wait <= 0) return
  const w0 = Date.now()
  await waitForQuiet(guard.maxOtherPct, wait, guard.ncpu, guard.maxStealPct)
  guard.quietBudget.remainingMs -= Date.now() - w0
}

/**
 * Runs the workload once (or again, up to `guard.retries` times, when the machine was busy with other work) and
 * returns the figures with CPU per party. `proxyPgid` undefined = direct.
 */
export async function measure(
  w: Workload,
  port: number,
  seconds: number,
  load: LoadSetup,
  pgids: { proxy: number | undefined; backend: number },
  guard: GuardOptions,
): Promise<Sample> {
  const { argv, env } = loadCommand(w, port, seconds, load)
  let sample: Sample | undefined
  for (let attempt = 0; attempt <= guard.retries; attempt++) {
    await waitQuietWithinBudget(guard)
    const groups = [pgids.backend, ...(pgids.proxy === undefined ? [] : [pgids.proxy])]
    const g0 = groupTicks(groups)
    const m0 = machineTicks()
    const t0 = process.hrtime.bigint()
    const run = await runMeasured(argv, (seconds + 20) * 1000, join(load.dir, 'load.stat'), env)
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9
    const g1 = groupTicks(groups)
    const m1 = machineTicks()
    if (run.code !== 0) throw new Error(`${argv.join(' ')} exited ${run.code}: ${run.stderr.slice(-500)}`)
    const figs = parseLoadOutput(run.stdout, seconds)
    const d = (p: number | undefined) => (p === undefined ? 0 : g1.get(p)! - g0.get(p)!)
    const proxyTicks = d(pgids.proxy)
    const backendTicks = d(pgids.backend)
    const other = m1.busy - m0.busy - proxyTicks - backendTicks - run.ticks
    const pctOfMachine = (ticks: number) => (100 * ticks) / (TICKS_PER_SECOND * elapsed * guard.ncpu)
    const otherPct = pctOfMachine(other)
    const stealPct = pctOfMachine(m1.steal - m0.steal)
    sample = {
      ...figs,
      proxyCpu: proxyTicks / TICKS_PER_SECOND,
      backendCpu: backendTicks / TICKS_PER_SECOND,
      loadCpu: run.ticks / TICKS_PER_SECOND,
      otherPct,
      stealPct,
      retries: attempt,
      flagged: otherPct > guard.maxOtherPct || stealPct > guard.maxStealPct,
    }
    if (!sample.flagged) break
  }
  return sample!
}
