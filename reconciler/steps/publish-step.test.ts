import { describe, expect, it } from 'vitest'
import type { CurrentTable } from '../pass-state.js'
import { readAhead } from './publish-step.js'
import type { PassBus } from './types.js'

/** A bus whose currentTable answers after `ms`, counting the reads in flight. */
function slowBus(ms: number, fail?: string) {
  const seen = { inFlight: 0, most: 0, reads: [] as string[] }
  const bus = {
    currentTable: async (zone: string): Promise<CurrentTable | undefined> => {
      seen.reads.push(zone)
      seen.inFlight++
      seen.most = Math.max(seen.most, seen.inFlight)
      await new Promise((r) => setTimeout(r, ms))
      seen.inFlight--
      if (zone === fail) throw new Error(`read of ${zone} failed`)
      return { generation: 1, revision: 'r', digest: `d-${zone}`, kvRevision: 1 }
    },
  } as unknown as PassBus
  return { bus, seen }
}

describe('publish step - current tables read ahead of the writes', () => {
  it('publish - each zone read once, in order, at most 16 ahead of the one awaited, overlapping', async () => {
    const zones = Array.from({ length: 40 }, (_, i) => `z${i}`)
    const { bus, seen } = slowBus(20)
    const read = readAhead(bus, zones)
    const t0 = Date.now()
    for (const z of zones) expect((await read(z))?.digest).toBe(`d-${z}`)
    expect(seen.reads).toEqual(zones)
    expect(seen.most).toBe(17) // the zone being awaited and 16 ahead of it
    expect(Date.now() - t0).toBeLessThan(40 * 20) // one after the other would take 800 ms
  })

  it('publish - a failed read rejects on its zone’s turn; the loop stopping before it leaves nothing unhandled', async () => {
    const { bus } = slowBus(1, 'z2')
    const read = readAhead(bus, ['z0', 'z1', 'z2', 'z3'])
    await expect(read('z0')).resolves.toBeDefined()
    await new Promise((r) => setTimeout(r, 20)) // z2's read has failed meanwhile
    await expect(read('z1')).resolves.toBeDefined()
    await expect(read('z2')).rejects.toThrow('read of z2 failed')
    const other = readAhead(slowBus(1, 'z1').bus, ['z0', 'z1'])
    await other('z0')
    await new Promise((r) => setTimeout(r, 20)) // z1 failed and is never asked for (a write failed first)
  })
})
