import { describe, expect, it } from 'vitest'
import { machineTicks, parseProcStat, stealMeter } from '../../benchmarks/peers/cpu.js'

// The benchmarks' interference guard reads the machine's busy and stolen ticks from /proc/stat's first line.
describe('bench cpu accounting - /proc/stat', () => {
  it('busy is user+nice+system+irq+softirq; steal is the eighth column, apart from busy', () => {
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    const t = parseProcStat('cpu  100 2 30 5000 7 4 6 250 0 0\ncpu0 50 1 15 2500 3 2 3 125 0 0\n')
    expect(t).toEqual({ busy: 100 + 2 + 30 + 4 + 6, steal: 250 })
  })

  it('a kernel without the steal column reads as no steal', () => {
    expect(parseProcStat('cpu 1 2 3 4 5 6 7')).toEqual({ busy: 1 + 2 + 3 + 6 + 7, steal: 0 })
  })

  it('anything but the cpu line is refused with what it read', () => {
    expect(() => parseProcStat('intr 1 2 3 4 5 6 7 8')).toThrow(/unexpected first line "intr 1 2/)
  })

  it('reads this machine', () => {
    const a = machineTicks()
    expect(Number.isFinite(a.busy) && a.busy > 0).toBe(true)
    expect(Number.isFinite(a.steal) && a.steal >= 0).toBe(true)
  })

  it('a steal meter gives a share of the machine since it started', async () => {
    const stolen = stealMeter(2)
    await new Promise((r) => setTimeout(r, 200))
    const pct = stolen()
    expect(pct).toBeTypeOf('number')
    expect(pct! >= 0 && pct! <= 100).toBe(true)
  })
})
