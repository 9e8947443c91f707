import { describe, expect, it } from 'vitest'
import type { TableRoute } from '../../schemas/table.js'
import { compileZoneTables } from './compile.js'
import { validateSnapshot } from './validate/index.js'

/**
 * Routing details of issue #10, each pinned to the Kuma v2.14 code it follows (kuma-model.md §5):
 * `pkg/xds/topology/outbound.go` BuildEgressEndpointMap / GetLocality, `pkg/zone/available_services.go`,
 * `pkg/xds/envoy/endpoints/v3` (Envoy keeps the first of duplicate hosts).
 */

const mesh = (extra = '') =>
  `type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n  - name: ca-1\n    type: builtin\nrouting:\n  zoneEgress: true\n${extra}`
const EGRESS = 'type: ZoneEgress\nname: ze\nzone: zone-a\nnetworking:\n  port: 10002\n'
const ingress = (name: string, zone: string | undefined, addr: string, services: string) =>
  `type: ZoneIngress\nname: ${name}\n${zone ? `zone: ${zone}\n` : ''}networking:\n  port: 10001\n  advertisedAddress: ${addr}\n  advertisedPort: 10001\navailableServices:\n${services}`
const svc = (name: string, instances: number, zoneTag?: string) =>
  `  - mesh: default\n    instances: ${instances}\n    tags:\n      kuma.io/service: ${name}\n${zoneTag ? `      kuma.io/zone: ${zoneTag}\n` : ''}`

function routes(files: Record<string, string>): TableRoute[] {
  const v = validateSnapshot({ revision: 't', files: new Map(Object.entries(files)) })
  expect(v.violations).toEqual([])
  return compileZoneTables(v.resources).get('zone-a')?.routes ?? []
}
const upstreams = (rs: TableRoute[], service: string) => rs.find((r) => r.service === service)?.upstreams

describe('compile routing', () => {
  it('compile routing - the same advertised address and port twice: one upstream, the first one’s weight (Envoy keeps the first)', () => {
    const rs = routes({
      'm.yaml': mesh(),
      'e.yaml': EGRESS,
      'i.yaml': ingress('zi-b', 'zone-b', '198.51.100.1', `${svc('orders', 3, 'zone-b')}${svc('orders', 5, 'zone-b')}`),
    })
    expect(upstreams(rs, 'orders')).toEqual([{ address: '198.51.100.1', port: 10001, weight: 3, zone: 'zone-b' }])
  })

  it('compile routing - a ZoneIngress without zone is never remote (Kuma: zone non-empty and different)', () => {
    const rs = routes({
      'm.yaml': mesh(),
      'e.yaml': EGRESS,
      'i.yaml': ingress('zi-none', undefined, '198.51.100.9', svc('orders', 1)),
    })
    expect(rs).toEqual([])
  })

  it('compile routing - meshServices.mode Exclusive: no cross-zone routes from legacy advertised services', () => {
    const files = {
      'm.yaml': mesh(),
      'e.yaml': EGRESS,
      'i.yaml': ingress('zi-b', 'zone-b', '198.51.100.1', svc('orders', 1)),
    }
    expect(routes(files).map((r) => r.service)).toEqual(['orders'])
    expect(routes({ ...files, 'm.yaml': mesh('meshServices:\n  mode: Exclusive\n') })).toEqual([])
  })

  it('compile routing - localityAwareLoadBalancing: remote endpoints with a zone tag get priority 1, without it 0 (GetLocality)', () => {
    const files = {
      'm.yaml': mesh('  localityAwareLoadBalancing: true\n'),
      'e.yaml': EGRESS,
      'b.yaml': ingress('zi-b', 'zone-b', '198.51.100.1', svc('orders', 2, 'zone-b')),
      'c.yaml': ingress('zi-c', 'zone-c', '198.51.100.2', svc('orders', 1)),
      'es.yaml':
        'type: ExternalService\nname: orders-local\nmesh: default\ntags:\n  kuma.io/service: orders\n  kuma.io/zone: zone-a\nnetworking:\n  address: 198.51.100.3:443\n',
    }
    expect(upstreams(routes(files), 'orders')).toEqual([
      { address: '198.51.100.1', port: 10001, weight: 2, zone: 'zone-b', priority: 1 },
      { address: '198.51.100.2', port: 10001, weight: 1, zone: 'zone-c' },
      { address: '198.51.100.3', port: 443, weight: 1 },
    ])
    // Without locality-aware balancing every endpoint is priority 0 (no field: old digests unchanged).
    const off = upstreams(routes({ ...files, 'm.yaml': mesh() }), 'orders') ?? []
    expect(off.every((u) => u.priority === undefined)).toBe(true)
  })

  it('compile routing - ExternalServices of one service mixing IPs and host names: a violation naming every file', () => {
    const es = (name: string, address: string) =>
      `type: ExternalService\nname: ${name}\nmesh: default\ntags:\n  kuma.io/service: api\nnetworking:\n  address: ${address}\n`
    const v = validateSnapshot({
      revision: 't',
      files: new Map([
        ['m.yaml', mesh()],
        ['a.yaml', es('api-a', 'api.example.com:443')],
        ['b.yaml', es('api-b', '192.0.2.1:443')],
      ]),
    })
    const mixed = v.violations.filter((x) => x.rule === 'external-service.mixed-endpoints')
    expect(mixed.map((x) => x.file)).toEqual(['a.yaml', 'b.yaml'])
    for (const x of mixed) expect(x.message).toContain('a.yaml:1 (host name), b.yaml:1 (IP)')
  })
})
