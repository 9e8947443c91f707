import { describe, expect, it } from 'vitest'
import { tableDigest } from '../../schemas/digest.js'
import type { TableRoute, ZoneTable } from '../../schemas/table.js'
import { isNewerTable, lowerAscii, Route, RoutingTable, staleReason, validateTableEnvelope } from './routing-table.js'

function route(sni: string, weights: number[], mode: TableRoute['mode'] = 'passthrough'): TableRoute {
  return {
    sni,
    mesh: 'default',
    service: sni,
    kind: 'cross-zone',
    mode,
    upstreams: weights.map((weight, i) => ({ address: '127.0.0.1', port: 10000 + i, weight })),
  }
}

function makeTable(routes: TableRoute[], generation?: number, zone = 'zone-a'): ZoneTable {
  const body = { zone, egresses: [{ name: 'ze-a', port: 10002 }], routes }
  return {
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    ...(generation === undefined ? {} : { generation, revision: `main@sha1:${'a'.repeat(40)}` }),
    digest: tableDigest(body),
    ...body,
  }
}

function picks(r: Route, n: number): number[] {
  return Array.from({ length: n }, () => r.pick())
}

describe('routing-table', () => {
  it('routing-table - exact match after ASCII lower-casing', () => {
    const t = new RoutingTable(makeTable([route('Orders{mesh=default}', [1]), route('a.test', [1])]))
    expect(t.lookup('orders{mesh=default}')?.sni).toBe('orders{mesh=default}')
    expect(t.lookup('A.TEST')?.sni).toBe('a.test')
    expect(t.lookup('a.test.')).toBeUndefined()
    expect(t.lookup('b.test')).toBeUndefined()
    expect(t.lookup('orders')).toBeUndefined()
    const k = new RoutingTable(makeTable([route('k.test', [1])]))
    expect(k.lookup('K.TEST')?.sni).toBe('k.test')
    expect(k.lookup('\u212A.test')).toBeUndefined() // Kelvin sign: no Unicode case folding
  })

  const wrr: [string, number[], number[]][] = [
    ['nginx example 5,1,1', [5, 1, 1], [0, 0, 1, 0, 2, 0, 0]],
    ['equal weights alternate', [1, 1], [0, 1, 0, 1]],
    ['2:1', [2, 1], [0, 1, 0]],
    ['weight 0 never picked', [0, 1], [1, 1, 1]],
    ['all weights 0 spread evenly', [0, 0], [0, 1, 0, 1]],
    ['single upstream', [3], [0, 0]],
  ]
  it.each(wrr)('routing-table - smooth weighted round robin: %s', (_n, weights, expected) => {
    expect(picks(new Route(route('x', weights)), expected.length)).toEqual(expected)
  })

  it('routing-table - weights are honoured exactly over whole cycles', () => {
    const r = new Route(route('x', [7, 2, 1]))
    const counts = [0, 0, 0]
    for (const i of picks(r, 1000)) counts[i]!++
    expect(counts).toEqual([700, 200, 100])
  })

  it('routing-table - tried upstreams are skipped and -1 ends the failover', () => {
    const r = new Route(route('x', [5, 1, 1]))
    const tried = new Set<number>([r.pick()])
    expect(tried.has(0)).toBe(true)
    const second = r.pick(tried)
    expect([1, 2]).toContain(second)
    tried.add(second)
    const third = r.pick(tried)
    expect(third).toBe(second === 1 ? 2 : 1)
    tried.add(third)
    expect(r.pick(tried)).toBe(-1)
    expect(new Route(route('y', [1])).pick(new Set([0]))).toBe(-1)
  })

  it('routing-table - lowerAscii only touches A-Z', () => {
    expect(lowerAscii('Orders{Mesh=Default}')).toBe('orders{mesh=default}')
    const same = 'already.lower'
    expect(lowerAscii(same)).toBe(same)
    expect(lowerAscii('\u212Aelvin.TEST')).toBe('\u212Aelvin.test')
  })
})

describe('routing-table validation', () => {
  const good = makeTable([route('a.test', [1])], 3)
  const cases: [string, unknown, string][] = [
    ['not an object', 'nope', 'invalid'],
    ['missing routes', { ...good, routes: undefined }, 'invalid'],
    ['fractional generation', { ...good, generation: 1.5 }, 'invalid'],
    [
      'port out of range',
      makeTable([{ ...route('a', [1]), upstreams: [{ address: 'h', port: 70000, weight: 1 }] }]),
      'invalid',
    ],
    ['tampered digest', { ...good, routes: [route('b.test', [1])] }, 'digest-mismatch'],
    ['duplicate sni after lower-casing', makeTable([route('a.test', [1]), route('A.test', [1])]), 'duplicate-sni'],
  ]
  it.each(cases)('routing-table - rejects %s', (_n, value, reason) => {
    const r = validateTableEnvelope(value)
    expect(r.ok).toBe(false)
    if (!r.ok) {
      expect(r.reason).toBe(reason)
      expect(r.problems.length).toBeGreaterThan(0)
    }
  })

  it('routing-table - accepts a valid envelope and checks the zone when asked', () => {
    expect(validateTableEnvelope(good)).toEqual({ ok: true, table: good })
    expect(validateTableEnvelope(good, 'zone-a').ok).toBe(true)
    expect(validateTableEnvelope(good, 'zone-b')).toMatchObject({ ok: false, reason: 'wrong-zone' })
  })

  const ages: [
    string,
    { generation?: number; digest: string } | undefined,
    { generation?: number; digest: string },
    string | null,
  ][] = [
    ['nothing served', undefined, { generation: 1, digest: 'd1' }, null],
    ['greater generation', { generation: 4, digest: 'd1' }, { generation: 5, digest: 'd2' }, null],
    ['equal generation', { generation: 4, digest: 'd1' }, { generation: 4, digest: 'd2' }, 'stale-generation'],
    ['older generation', { generation: 4, digest: 'd1' }, { generation: 3, digest: 'd2' }, 'stale-generation'],
    ['unversioned after versioned', { generation: 4, digest: 'd1' }, { digest: 'd2' }, 'stale-generation'],
    ['versioned after unversioned', { digest: 'd1' }, { generation: 1, digest: 'd1' }, null],
    ['unversioned, new digest', { digest: 'd1' }, { digest: 'd2' }, null],
    ['unversioned, same digest', { digest: 'd1' }, { digest: 'd1' }, 'unchanged'],
  ]
  it.each(ages)('routing-table - staleReason: %s', (_n, current, next, expected) => {
    expect(staleReason(current, next)).toBe(expected)
    expect(isNewerTable(current, next)).toBe(expected === null)
  })
})
