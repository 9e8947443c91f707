/**
 * CPU accounting from /proc, as the reference harness does: utime+stime per process group (a proxy, the backend),
 * and busy time of the whole machine from /proc/stat, all in clock ticks (USER_HZ = 100 on Linux).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { statFields } from './procs.js'

export const TICKS_PER_SECOND = 100

/** Sum of utime+stime (ticks) of every live process whose process group is one of `pgids`. */
export function groupTicks(pgids: number[]): Map<number, number> {
  const out = new Map<number, number>(pgids.map((p) => [p, 0]))
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let f: string[]
    try {
      f = statFields(readFileSync(`/proc/${entry}/stat`, 'utf8'))
    } catch {
      continue
    }
    const pgrp = Number(f[2])
    if (!out.has(pgrp)) continue
    out.set(pgrp, out.get(pgrp)! + Number(f[11]) + Number(f[12]))
  }
  return out
}

/** The whole machine's ticks from /proc/stat's first line. */
export interface MachineTicks {
  /** user+nice+system+irq+softirq, all CPUs. */
  busy: number
  /**
   * Time the hypervisor ran something else while this VM's CPUs wanted to run (the `steal` column; 0 on bare
   * metal). It is not in `busy`, and no process here is charged for it: a run with steal got fewer cycles per
   * second of wall time, so its rates are low whatever the proxy does.
   */
  steal: number
}

/** Parses the `cpu` line of /proc/stat (`cpu user nice system idle iowait irq softirq steal …`). */
export function parseProcStat(text: string): MachineTicks {
  const line = text.split('\n', 1)[0]!
  const f = line.trim().split(/\s+/)
  if (f[0] !== 'cpu' || f.length < 8) throw new Error(`/proc/stat: unexpected first line ${JSON.stringify(line)}`)
  const v = f.slice(1).map(Number)
  return { busy: v[0]! + v[1]! + v[2]! + v[5]! + v[6]!, steal: v[7] ?? 0 }
}

export function machineTicks(): MachineTicks {
  return parseProcStat(readFileSync('/proc/stat', 'utf8'))
}

/** Busy ticks of the whole machine (user+nice+system+irq+softirq, all CPUs) from /proc/stat. */
export function machineBusyTicks(): number {
  return machineTicks().busy
}

/**
 * Starts a steal meter: the returned function gives the hypervisor's steal since the call, in % of the whole
 * machine (all CPUs = 100 %), or undefined where /proc/stat cannot be read (not Linux).
 */
export function stealMeter(ncpu: number): () => number | undefined {
  let a: MachineTicks
  try {
    a = machineTicks()
  } catch {
    return () => undefined
  }
  const t0 = Date.now()
  return () => {
    const secs = (Date.now() - t0) / 1000
    if (secs <= 0) return undefined
    return (100 * (machineTicks().steal - a.steal)) / (TICKS_PER_SECOND * secs * ncpu)
  }
}

/** Busy and stolen percentages of the whole machine (all CPUs = 100 %) over `ms`. */
export async function machineBusyPct(ms: number, ncpu: number): Promise<{ busy: number; steal: number }> {
  const a = machineTicks()
  const t0 = Date.now()
  await new Promise((r) => setTimeout(r, ms))
  const b = machineTicks()
  const secs = (Date.now() - t0) / 1000
  const pct = (x: number) => (100 * x) / (TICKS_PER_SECOND * secs * ncpu)
  return { busy: pct(b.busy - a.busy), steal: pct(b.steal - a.steal) }
}

/**
 * Waits (≤ `maxWaitMs`) until the machine is quieter than `maxPct` and the hypervisor steals at most
 * `maxStealPct` over a 1 s sample. Returns the last sample and whether it was quiet.
 */
export async function waitForQuiet(
  maxPct: number,
  maxWaitMs: number,
  ncpu: number,
  maxStealPct = Number.POSITIVE_INFINITY,
): Promise<{ pct: number; steal: number; quiet: boolean }> {
  const deadline = Date.now() + maxWaitMs
  for (;;) {
    const { busy, steal } = await machineBusyPct(1000, ncpu)
    if (busy <= maxPct && steal <= maxStealPct) return { pct: busy, steal, quiet: true }
    if (Date.now() >= deadline) return { pct: busy, steal, quiet: false }
  }
}
