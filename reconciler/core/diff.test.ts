import { describe, expect, it } from 'vitest'
import type { ExternalService, Mesh, ZoneEgress, ZoneIngress } from '../../schemas/resources.js'
import { compileZoneTables } from './compile.js'
import { diffZoneTables, hasChanges, ZoneStatus } from './diff.js'
import type { Located, Resources } from './model.js'

const loc = <T>(resource: T): Located<T> => ({
  resource,
  location: { file: 'x.yaml', line: 1, column: 1 },
  positions: new Map(),
})

const base = () => {
  const mesh: Mesh = {
    type: 'Mesh',
    name: 'default',
    mtls: { enabledBackend: 'ca', backends: [{ name: 'ca', type: 'builtin' }] },
    routing: { zoneEgress: true },
  }
  const egresses: ZoneEgress[] = ['a', 'b'].map((z) => ({
    type: 'ZoneEgress',
    name: `ze-${z}`,
    zone: `zone-${z}`,
    networking: { address: '10.0.0.1', port: 10002 },
  }))
  const ingress: ZoneIngress = {
    type: 'ZoneIngress',
    name: 'zi-b',
    zone: 'zone-b',
    networking: { port: 10001, advertisedAddress: '198.51.100.21', advertisedPort: 10001 },
    availableServices: [{ mesh: 'default', instances: 2, tags: { 'kuma.io/service': 'orders' } }],
  }
  const es = (name: string, address: string): ExternalService => ({
    type: 'ExternalService',
    name,
    mesh: 'default',
    tags: { 'kuma.io/service': name },
    networking: { address },
  })
  return {
    mesh,
    egresses,
    ingress,
    externalServices: [es('httpbin', 'httpbin.org:443'), es('geo', 'geo.example.com:443')],
  }
}
type Base = ReturnType<typeof base>
const compile = (b: Base) =>
  compileZoneTables({
    meshes: [loc(b.mesh)],
    zoneEgresses: b.egresses.map(loc),
    zoneIngresses: [loc(b.ingress)],
    externalServices: b.externalServices.map(loc),
  } satisfies Resources)

describe('diff', () => {
  it('diff - unchanged zones compare by digest only', () => {
    const d = diffZoneTables(compile(base()), compile(base()))
    expect(d.map((z) => [z.zone, z.status])).toEqual([
      ['zone-a', 'unchanged'],
      ['zone-b', 'unchanged'],
    ])
    expect(hasChanges(d)).toBe(false)
    expect(d[0]?.routes).toEqual({ added: [], removed: [], changed: [] })
  })

  it('diff - adding a service adds its route in every zone', () => {
    const next = base()
    next.externalServices.push({ ...next.externalServices[0]!, name: 'new', tags: { 'kuma.io/service': 'new' } })
    const d = diffZoneTables(compile(base()), compile(next))
    expect(hasChanges(d)).toBe(true)
    for (const z of d) {
      expect(z.status).toBe(ZoneStatus.Changed)
      expect(z.routes.added.map((r) => r.sni)).toEqual(['new{mesh=default}'])
      expect(z.routes.removed).toEqual([])
      expect(z.before).not.toBe(z.after)
    }
  })

  it('diff - removing a service removes its route', () => {
    const next = base()
    next.externalServices = next.externalServices.filter((e) => e.name !== 'geo')
    const d = diffZoneTables(compile(base()), compile(next))
    expect(d.map((z) => z.routes.removed.map((r) => r.sni))).toEqual([['geo{mesh=default}'], ['geo{mesh=default}']])
  })

  it('diff - a weight change shows before and after upstreams and weights', () => {
    const next = base()
    next.ingress = {
      ...next.ingress,
      availableServices: [{ mesh: 'default', instances: 5, tags: { 'kuma.io/service': 'orders' } }],
    }
    const [a, b] = diffZoneTables(compile(base()), compile(next))
    expect(b?.status).toBe('unchanged') // zone-b never routes through its own ingress
    expect(a?.status).toBe('changed')
    const change = a?.routes.changed[0]
    expect(change?.sni).toBe('orders{mesh=default}')
    expect(change?.fields).toEqual(['upstreams'])
    expect(change?.upstreams).toEqual([{ address: '198.51.100.21', port: 10001, zone: 'zone-b', before: 2, after: 5 }])
    expect(change?.before.upstreams[0]?.weight).toBe(2)
    expect(change?.after.upstreams[0]?.weight).toBe(5)
  })

  it('diff - an upstream that moves shows as removed and added upstream', () => {
    const next = base()
    next.externalServices[0] = { ...next.externalServices[0]!, networking: { address: 'httpbin.io:443' } }
    const [a] = diffZoneTables(compile(base()), compile(next))
    const change = a?.routes.changed[0]
    expect(change?.fields).toEqual(['upstreams'])
    expect(change?.upstreams).toEqual([
      { address: 'httpbin.io', port: 443, after: 1 },
      { address: 'httpbin.org', port: 443, before: 1 },
    ])
  })

  it('diff - a zone that loses its egress is explicitly removed with all its routes', () => {
    const next = base()
    next.egresses = next.egresses.filter((e) => e.zone !== 'zone-b')
    const d = diffZoneTables(compile(base()), compile(next))
    const b = d.find((z) => z.zone === 'zone-b')
    expect(b?.status).toBe(ZoneStatus.Removed)
    expect(b?.after).toBeUndefined()
    expect(b?.routes.removed.map((r) => r.sni)).toEqual(['geo{mesh=default}', 'httpbin{mesh=default}'])
    expect(b?.egresses).toEqual([{ name: 'ze-b', before: { name: 'ze-b', address: '10.0.0.1', port: 10002 } }])
    const back = diffZoneTables(compile(next), compile(base())).find((z) => z.zone === 'zone-b')
    expect(back?.status).toBe(ZoneStatus.Added)
    expect(back?.routes.added).toHaveLength(2)
  })

  it('diff - a mesh that flips zoneEgress off loses its cross-zone routes but keeps external ones', () => {
    const next = base()
    next.mesh = { ...next.mesh, routing: { zoneEgress: false } }
    const [a, b] = diffZoneTables(compile(base()), compile(next))
    expect(a?.status).toBe('changed')
    expect(a?.routes.removed.map((r) => `${r.sni} ${r.kind}`)).toEqual(['orders{mesh=default} cross-zone'])
    expect(a?.routes.added).toEqual([])
    expect(b?.status).toBe('unchanged')
  })

  it('diff - egress changes alone make the zone changed', () => {
    const next = base()
    next.egresses[0] = { ...next.egresses[0]!, networking: { address: '10.0.0.9', port: 10002 } }
    const [a] = diffZoneTables(compile(base()), compile(next))
    expect(a?.status).toBe('changed')
    expect(a?.routes).toEqual({ added: [], removed: [], changed: [] })
    expect(a?.egresses.map((e) => [e.before?.address, e.after?.address])).toEqual([['10.0.0.1', '10.0.0.9']])
  })

  it('diff - accepts lists of tables as well as maps', () => {
    const d = diffZoneTables([...compile(base()).values()], compile(base()).values())
    expect(d.every((z) => z.status === 'unchanged')).toBe(true)
  })
})
