import { describe, expect, it } from 'vitest'
import type { TableRoute } from '../../schemas/table.js'
import { Route } from './routing-table.js'

/**
 * Envoy priority levels as Kuma sets them with localityAwareLoadBalancing (`pkg/xds/topology/outbound.go`
 * GetLocality: priority 0 local / no zone tag, 1 remote): traffic goes only to the lowest priority that still has
 * an upstream; a connection that failed on every upstream of that level fails over to the next level.
 */
const route = (ups: [string, number, number][]): Route =>
  new Route({
    sni: 'orders{mesh=default}',
    mesh: 'default',
    service: 'orders',
    kind: 'cross-zone',
    mode: 'passthrough',
    upstreams: ups.map(([address, weight, priority]) => ({
      address,
      port: 1,
      weight,
      ...(priority ? { priority } : {}),
    })),
  } as TableRoute)

describe('route priority', () => {
  it('route priority - only priority 0 is picked while it has upstreams', () => {
    const r = route([
      ['p1-a', 5, 1],
      ['p0-a', 1, 0],
      ['p0-b', 1, 0],
    ])
    const picked = new Set(Array.from({ length: 20 }, () => r.upstreams[r.pick()]?.address))
    expect([...picked].sort()).toEqual(['p0-a', 'p0-b'])
  })
  it('route priority - when every priority-0 upstream failed for the connection, priority 1 is used', () => {
    const r = route([
      ['p1-a', 1, 1],
      ['p0-a', 1, 0],
      ['p0-b', 1, 0],
    ])
    expect(r.upstreams[r.pick(new Set([1, 2]))]?.address).toBe('p1-a')
    expect(r.pick(new Set([0, 1, 2]))).toBe(-1)
  })
  it('route priority - a route without priorities balances over every upstream', () => {
    const r = route([
      ['a', 1, 0],
      ['b', 1, 0],
    ])
    expect(new Set([r.pick(), r.pick()])).toEqual(new Set([0, 1]))
  })
})
