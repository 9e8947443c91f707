import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson, tableDigest } from '../../schemas/digest.js'
import type { AvailableService, ExternalService, Mesh, ZoneEgress, ZoneIngress } from '../../schemas/resources.js'
import {
  RouteKind,
  RouteMode,
  type RouteTls,
  type TableRoute,
  type TableUpstream,
  type UpstreamTls,
} from '../../schemas/table.js'
import { canonicalRouteJson, compileZoneTables, formatTableJson } from './compile.js'
import type { Located, Resources } from './model.js'

const loc = <T>(resource: T): Located<T> => ({
  resource,
  location: { file: 'x.yaml', line: 1, column: 1 },
  positions: new Map(),
})
const mesh = (name: string, o: { mtls?: boolean; zoneEgress?: boolean; exclusive?: boolean } = {}): Mesh => ({
  type: 'Mesh',
  name,
  ...(o.mtls === false ? {} : { mtls: { enabledBackend: 'ca', backends: [{ name: 'ca', type: 'builtin' }] } }),
  ...(o.zoneEgress ? { routing: { zoneEgress: true } } : {}),
  ...(o.exclusive ? { meshServices: { mode: 'Exclusive' as const } } : {}),
})
const egress = (name: string, zone?: string): ZoneEgress => ({
  type: 'ZoneEgress',
  name,
  ...(zone ? { zone } : {}),
  networking: { address: '10.0.0.1', port: 10002 },
})
const ingress = (name: string, zone: string | undefined, pair: string | undefined, services: AvailableService[]) => {
  const [address, port] = pair ? pair.split(':') : []
  const zi: ZoneIngress = {
    type: 'ZoneIngress',
    name,
    ...(zone ? { zone } : {}),
    networking: { port: 10001, ...(pair ? { advertisedAddress: address, advertisedPort: Number(port) } : {}) },
    availableServices: services,
  }
  return zi
}
const svc = (
  mesh: string,
  service: string,
  instances?: number,
  tags: Record<string, string> = {},
): AvailableService => ({
  mesh,
  tags: { 'kuma.io/service': service, ...tags },
  ...(instances === undefined ? {} : { instances }),
})
const ext = (name: string, m: string, service: string, address: string, tags: Record<string, string> = {}) =>
  ({
    type: 'ExternalService',
    name,
    mesh: m,
    tags: { 'kuma.io/service': service, ...tags },
    networking: { address },
  }) satisfies ExternalService
const resources = (r: {
  meshes?: Mesh[]
  egresses?: ZoneEgress[]
  ingresses?: ZoneIngress[]
  es?: ExternalService[]
}): Resources => ({
  meshes: (r.meshes ?? []).map(loc),
  zoneEgresses: (r.egresses ?? []).map(loc),
  zoneIngresses: (r.ingresses ?? []).map(loc),
  externalServices: (r.es ?? []).map(loc),
})
/** zone → sni → "addr:port/weight[@zone]" list, for compact expectations. */
const summary = (res: Resources, opts?: Parameters<typeof compileZoneTables>[1]) =>
  Object.fromEntries(
    [...compileZoneTables(res, opts)].map(([zone, t]) => [
      zone,
      Object.fromEntries(
        t.routes.map((r) => [
          r.sni,
          `${r.kind} ${r.upstreams.map((u) => `${u.address}:${u.port}/${u.weight}${u.zone ? `@${u.zone}` : ''}`).join(' ')}`,
        ]),
      ),
    ]),
  )

describe('compile', () => {
  const cases: {
    title: string
    input: Resources
    expected: Record<string, Record<string, string>>
    defaultZone?: string
  }[] = [
    {
      title:
        'a service both advertised by a remote ingress and a local ExternalService is cross-zone (ingress endpoints come first) and keeps both upstreams',
      input: resources({
        meshes: [mesh('m', { zoneEgress: true })],
        egresses: [egress('ze', 'a')],
        ingresses: [ingress('zi', 'b', '198.51.100.1:10001', [svc('m', 'db', 2)])],
        es: [ext('db-ext', 'm', 'db', 'db.example.com:5432')],
      }),
      expected: { a: { 'db{mesh=m}': 'cross-zone 198.51.100.1:10001/2@b db.example.com:5432/1' } },
    },
    {
      title: 'the same mixed service gets no route at all when zoneEgress is off (first endpoint is not external)',
      input: resources({
        meshes: [mesh('m')],
        egresses: [egress('ze', 'a')],
        ingresses: [ingress('zi', 'b', '198.51.100.1:10001', [svc('m', 'db', 2)])],
        es: [ext('db-ext', 'm', 'db', 'db.example.com:5432'), ext('other', 'm', 'other', 'o.example.com:1')],
      }),
      expected: { a: { 'other{mesh=m}': 'external o.example.com:1/1' } },
    },
    {
      title: 'MeshServices Exclusive: pinned ExternalServices are not advertised by ingresses',
      input: resources({
        meshes: [mesh('m', { zoneEgress: true, exclusive: true })],
        egresses: [egress('ze', 'a')],
        ingresses: [ingress('zi', 'b', '198.51.100.1:10001', [])],
        es: [ext('p', 'm', 'pinned', 'p.example.com:443', { 'kuma.io/zone': 'b' })],
      }),
      expected: { a: {} },
    },
    {
      title: 'a declared availableService equal to the synthesized one counts once',
      input: resources({
        meshes: [mesh('m', { zoneEgress: true })],
        egresses: [egress('ze', 'a')],
        ingresses: [
          ingress('zi', 'b', '198.51.100.1:10001', [
            { ...svc('m', 'pinned', 1, { 'kuma.io/zone': 'b' }), externalService: true },
          ]),
        ],
        es: [ext('p', 'm', 'pinned', 'p.example.com:443', { 'kuma.io/zone': 'b' })],
      }),
      expected: { a: { 'pinned{mesh=m}': 'cross-zone 198.51.100.1:10001/1@b' } },
    },
    {
      title: 'zone proxies without zone belong to the default zone option; a local ingress is never used',
      defaultZone: 'home',
      input: resources({
        meshes: [mesh('m', { zoneEgress: true })],
        egresses: [egress('ze')],
        ingresses: [
          ingress('zi-home', undefined, '198.51.100.1:10001', [svc('m', 'local', 1)]),
          ingress('zi-far', 'far', '198.51.100.2:10001', [svc('m', 'remote', 4)]),
        ],
      }),
      expected: { home: { 'remote{mesh=m}': 'cross-zone 198.51.100.2:10001/4@far' } },
    },
    {
      title: 'meshes without mTLS contribute nothing, not even external routes',
      input: resources({
        meshes: [mesh('plain', { mtls: false })],
        egresses: [egress('ze', 'a')],
        ingresses: [ingress('zi', 'b', '198.51.100.1:10001', [svc('plain', 'x', 1)])],
        es: [ext('e', 'plain', 'e', 'e.example.com:443')],
      }),
      expected: { a: {} },
    },
    {
      title: 'an ExternalService of a mesh that does not exist is ignored',
      input: resources({
        meshes: [],
        egresses: [egress('ze', 'a')],
        es: [ext('e', 'ghost', 'e', 'e.example.com:443')],
      }),
      expected: { a: {} },
    },
    {
      title: 'IPv6 advertised pairs and ExternalService hosts are unbracketed addresses',
      input: resources({
        meshes: [mesh('m', { zoneEgress: true })],
        egresses: [egress('ze', 'a')],
        ingresses: [ingress('zi', 'b', undefined, [svc('m', 'v6', 3)])].map((zi) => ({
          ...zi,
          networking: { ...zi.networking, advertisedAddress: '2001:db8::7', advertisedPort: 10001 },
        })),
        es: [ext('e', 'm', 'e6', '[2001:db8::1]:443')],
      }),
      expected: {
        a: { 'e6{mesh=m}': 'external 2001:db8::1:443/1', 'v6{mesh=m}': 'cross-zone 2001:db8::7:10001/3@b' },
      },
    },
  ]
  for (const c of cases) {
    it(`compile - ${c.title}`, () => {
      expect(summary(c.input, c.defaultZone ? { defaultZone: c.defaultZone } : undefined)).toEqual(c.expected)
    })
  }

  const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
  const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n'
  const tlsCases: { address: string; tls?: ExternalService['networking']['tls']; expected: unknown }[] = [
    {
      address: 'api.example.com:443',
      tls: { enabled: true },
      expected: { enabled: true, serverName: 'api.example.com' },
    },
    {
      address: 'api.example.com:443',
      tls: { enabled: true, serverName: 'sni.example' },
      expected: { enabled: true, serverName: 'sni.example' },
    },
    { address: '192.0.2.1:443', tls: { enabled: true }, expected: { enabled: true } },
    { address: '999.1.1.1:443', tls: { enabled: true }, expected: { enabled: true, serverName: '999.1.1.1' } },
    // Kuma: no tls.enabled → plain TCP, nothing else applies.
    { address: 'api.example.com:80', tls: { enabled: false, serverName: 'x' }, expected: undefined },
    { address: 'api.example.com:80', expected: undefined },
    {
      address: 'api.example.com:443',
      tls: {
        enabled: true,
        caCert: { inlineString: CA },
        clientCert: { inline: Buffer.from(CA).toString('base64') },
        allowRenegotiation: true,
        skipHostnameVerification: false,
      },
      // clientCert without clientKey: no client certificate (Kuma needs both).
      expected: {
        enabled: true,
        serverName: 'api.example.com',
        caCert: CA,
        allowRenegotiation: true,
        skipHostnameVerification: false,
      },
    },
    {
      address: 'api.example.com:443',
      tls: { enabled: true, clientCert: { inlineString: CA }, clientKey: { inlineString: KEY } },
      expected: { enabled: true, serverName: 'api.example.com', clientCert: CA, clientKey: KEY },
    },
  ]
  for (const c of tlsCases) {
    it(`compile - tls of ${c.address} with ${JSON.stringify(c.tls)}`, () => {
      const e = ext('e', 'm', 'e', c.address)
      const input = resources({
        meshes: [mesh('m')],
        egresses: [egress('ze', 'a')],
        es: [{ ...e, networking: { ...e.networking, ...(c.tls ? { tls: c.tls } : {}) } }],
      })
      const route = compileZoneTables(input).get('a')?.routes[0]
      expect(route?.upstreams[0]?.tls).toEqual(c.expected)
      expect(route?.tls).toBeUndefined() // route-level tls is no longer emitted (decision 007)
    })
  }

  it('compile - the SNI format is pluggable', () => {
    const input = resources({
      meshes: [mesh('m')],
      egresses: [egress('ze', 'a')],
      es: [ext('e', 'm', 'web', 'w.example.com:1')],
    })
    const format = {
      name: 'test',
      build: (d: { mesh: string; service: string }) => `${d.service}.${d.mesh}.test`,
      parse: () => ({ mesh: '', service: '' }),
    }
    expect(compileZoneTables(input, { sniFormat: format }).get('a')?.routes[0]?.sni).toBe('web.m.test')
  })

  it('compile - routes shared between zones are frozen and the digest matches tableDigest', () => {
    const input = resources({
      meshes: [mesh('m')],
      egresses: [egress('ze', 'a'), egress('ze', 'b')],
      es: [
        ext('e', 'm', 'web', 'w.example.com:1'),
        // Non-ASCII in a shared route: the digest's byte offsets must count UTF-8 bytes, not characters.
        {
          ...ext('u', 'm', 'uni', 'u.example.com:443'),
          networking: { address: 'u.example.com:443', tls: { enabled: true, serverName: 'ünï.example' } },
        },
        ext('z', 'm', 'zed', 'z.example.com:1'),
      ],
    })
    const tables = compileZoneTables(input)
    const a = tables.get('a')?.routes.find((r) => r.service === 'web') as TableRoute
    expect(Object.isFrozen(a)).toBe(true)
    expect(() => {
      ;(a.upstreams[0] as { weight: number }).weight = 9
    }).toThrow()
    for (const t of tables.values()) expect(t.digest).toBe(tableDigest(t))
  })

  it('compile - canonicalRouteJson equals canonicalJson for any route, every TableRoute field set or not (property)', () => {
    // One arbitrary per field of each type: a field added to TableRoute, TableUpstream or their TLS types is a
    // type error here until it is generated too, so canonicalRouteJson cannot silently leave it out.
    type Arbitraries<T> = { [K in keyof Required<T>]: fc.Arbitrary<T[K]> }
    const required = <T>(...keys: (keyof T & string)[]) => ({ requiredKeys: keys })
    const s = fc.string({ maxLength: 8 })
    const upstreamTls: Arbitraries<UpstreamTls> = {
      enabled: fc.boolean(),
      serverName: s,
      caCert: s,
      clientCert: s,
      clientKey: s,
      allowRenegotiation: fc.boolean(),
      skipHostnameVerification: fc.boolean(),
    }
    const upstream: Arbitraries<TableUpstream> = {
      address: s,
      port: fc.integer({ min: 1, max: 65535 }),
      weight: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      zone: s,
      priority: fc.integer({ min: 0, max: 128 }),
      tls: fc.record(upstreamTls, required<UpstreamTls>('enabled')),
    }
    const routeTls: Arbitraries<RouteTls> = { enabled: fc.boolean(), serverName: s }
    const route: Arbitraries<TableRoute> = {
      sni: s,
      mesh: s,
      service: s,
      kind: fc.constantFrom(...Object.values(RouteKind)),
      mode: fc.constantFrom(...Object.values(RouteMode)),
      upstreams: fc.array(fc.record(upstream, required<TableUpstream>('address', 'port', 'weight')), { maxLength: 3 }),
      tls: fc.record(routeTls, required<RouteTls>('enabled')),
      allow: fc.array(s, { maxLength: 3 }),
      deny: fc.array(s, { maxLength: 3 }),
    }
    const routes = fc.record(route, required<TableRoute>('sni', 'mesh', 'service', 'kind', 'mode', 'upstreams'))
    fc.assert(
      fc.property(routes, (r) => {
        expect(canonicalRouteJson(r)).toBe(canonicalJson(r))
      }),
      { numRuns: 300 },
    )
  })

  it('compile - shuffling resources never changes the bytes of the output (property)', () => {
    const input = resources({
      meshes: [mesh('m', { zoneEgress: true }), mesh('n'), mesh('p', { mtls: false })],
      egresses: [egress('ze-1', 'a'), egress('ze-2', 'a'), egress('ze', 'b')],
      ingresses: [
        ingress('zi-1', 'b', '198.51.100.1:10001', [svc('m', 'x', 2), svc('m', 'y', 1)]),
        ingress('zi-2', 'b', '198.51.100.1:10001', [svc('m', 'z', 5)]),
        ingress('zi-3', 'c', '198.51.100.3:10001', [svc('m', 'x', 1)]),
        ingress('zi-1', 'a', '198.51.100.4:10001', [svc('m', 'w', 1)]),
      ],
      es: [
        ext('e1', 'm', 'web', 'b.example.com:1'),
        ext('e2', 'm', 'web', 'a.example.com:1'),
        ext('e3', 'n', 'web', 'c.example.com:1', { 'kuma.io/zone': 'a' }),
        ext('e4', 'm', 'pin', 'd.example.com:1', { 'kuma.io/zone': 'c' }),
      ],
    })
    const bytes = (r: Resources) => [...compileZoneTables(r).values()].map(formatTableJson).join('')
    const baseline = bytes(input)
    const shuffled = <T>(xs: T[]) => fc.shuffledSubarray(xs, { minLength: xs.length, maxLength: xs.length })
    fc.assert(
      fc.property(
        shuffled(input.meshes),
        shuffled(input.zoneEgresses),
        shuffled(input.zoneIngresses),
        shuffled(input.externalServices),
        (meshes, zoneEgresses, zoneIngresses, externalServices) => {
          expect(bytes({ meshes, zoneEgresses, zoneIngresses, externalServices })).toBe(baseline)
        },
      ),
      { numRuns: 200 },
    )
  })
})
