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

/** Busy ticks of the whole machine (user+nice+system+irq+softirq, all CPUs) from /proc/stat. */
export function machineBusyTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  return v[0]! + v[1]! + v[2]! + v[5]! + v[6]!
}

/** Busy percentage of the whole machine (all CPUs = 100 %) over `ms`. */
export async function machineBusyPct(ms: number, ncpu: number): Promise<number> {
  const a = machineBusyTicks()
  const t0 = Date.now()
  await new Promise((r) => setTimeout(r, ms))
  const b = machineBusyTicks()
  const secs = (Date.now() - t0) / 1000
  return (100 * (b - a)) / (TICKS_PER_SECOND * secs * ncpu)
}

/**
 * Waits (≤ `maxWaitMs`) until the machine is quieter than `maxPct` over a 1 s sample. Returns the last sample and
 * whether it was quiet.
 */
export async function waitForQuiet(
  maxPct: number,
  maxWaitMs: number,
  ncpu: number,
): Promise<{ pct: number; quiet: boolean }> {
  const deadline = Date.now() + maxWaitMs
  for (;;) {
    const pct = await machineBusyPct(1000, ncpu)
    if (pct <= maxPct) return { pct, quiet: true }
    if (Date.now() >= deadline) return { pct, quiet: false }
  }
}
