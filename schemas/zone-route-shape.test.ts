import { Ajv2020 } from 'ajv/dist/2020.js'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson, tableDigest, tableDigestOfRoutes } from './digest.js'
import type { TableRoute } from './table.js'
import { areValidRoutes, checkRoutes, isValidRoute } from './zone-route-shape.js'
import zoneTableSchema from './zone-table.schema.json' with { type: 'json' }
import { validateZoneTableShape } from './zone-table-shape.js'

/**
 * zone-route-shape.ts decides "valid route or not" by hand; ajv (the generated validator, and ajv compiling the
 * schema at run time) is the reference. They must agree on every route, valid or not: generated valid routes,
 * the same with one member broken (removed, unknown, wrong type, out of bounds), and hand-picked edge cases.
 */
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
const envelope = (routes: unknown[]) => ({
  apiVersion: 'zonegate.io/v1',
  kind: 'ZoneEgressTable',
  zone: 'zone-a',
  digest: `sha256:${'0'.repeat(64)}`,
  egresses: [{ name: 'ze-a', port: 10002 }],
  routes,
})
const runtime = new Ajv2020({ allErrors: true, strict: true }).compile(zoneTableSchema)
/** The reference: the route is valid when the envelope holding only it is (the rest of it is valid). */
const ajvValid = (route: unknown) => validateZoneTableShape(envelope([route])).length === 0

const expectAgree = (route: unknown) => {
  const want = ajvValid(route)
  expect(runtime(envelope([route])), JSON.stringify(route)).toBe(want)
  expect(isValidRoute(route), JSON.stringify(route)).toBe(want)
}

// strings at and around the schema's length bounds, in code units and in code points (ajv counts code points)
const text = (max: number) =>
  fc.oneof(
    fc.string({ minLength: 1, maxLength: 12 }),
    fc.constantFrom('a'.repeat(max), '😀'.repeat(max), `${'😀'.repeat(max - 1)}a`, '\ud83d'),
  )
const pem = fc.constantFrom(PEM, '-----BEGIN ', `x${PEM}`)
const zoneName = fc.constantFrom('zone-b', 'eu.west-1', 'a', `${'a'.repeat(251)}.b`)
const upstreamTls = fc.record(
  {
    enabled: fc.boolean(),
    serverName: text(253),
    caCert: pem,
    clientCert: pem,
    clientKey: pem,
    allowRenegotiation: fc.boolean(),
    skipHostnameVerification: fc.boolean(),
  },
  { requiredKeys: ['enabled'] },
)
const upstream = fc.record(
  {
    address: text(253),
    port: fc.constantFrom(1, 443, 65535),
    weight: fc.constantFrom(0, 1, 100, 4294967295),
    zone: zoneName,
    priority: fc.constantFrom(0, 1, 128),
    tls: upstreamTls,
  },
  { requiredKeys: ['address', 'port', 'weight'] },
)
const names = fc.uniqueArray(text(253), { maxLength: 4 })
const validRoute = fc.record(
  {
    sni: text(4096),
    mesh: text(253),
    service: text(4096),
    kind: fc.constantFrom('external', 'cross-zone'),
    mode: fc.constantFrom('passthrough', 'terminate-mtls'),
    upstreams: fc.array(upstream, { minLength: 1, maxLength: 3 }),
    tls: fc.record({ enabled: fc.boolean(), serverName: text(253) }, { requiredKeys: ['enabled'] }),
    allow: names,
    deny: names,
  },
  { requiredKeys: ['sni', 'mesh', 'service', 'kind', 'mode', 'upstreams'] },
)

/** Values that break some rule somewhere (wrong type, out of bounds, empty, too long, not integer, …). */
const hostile = fc.constantFrom<unknown>(
  undefined,
  null,
  true,
  0,
  -1,
  -0,
  1.5,
  129,
  65536,
  4294967296,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  '',
  'a'.repeat(254),
  '😀'.repeat(254),
  'a'.repeat(4097),
  'UPPER',
  'external ',
  '-----BEGIN',
  [],
  ['x', 'x'],
  [''],
  {},
  { enabled: 'yes' },
  { enabled: true, extra: 1 },
)

/** A copy of `v` with the member at a random path replaced by `x` (or removed when `x` is undefined). */
function mutate(v: unknown, pick: number[], x: unknown, extraKey: boolean): unknown {
  if (typeof v !== 'object' || v === null) return x
  const copy: Record<string, unknown> | unknown[] = Array.isArray(v) ? [...v] : { ...(v as Record<string, unknown>) }
  const keys = Object.keys(copy)
  if (keys.length === 0 || pick.length === 0) return copy
  const [head, ...rest] = pick as [number, ...number[]]
  if (extraKey && rest.length === 0 && !Array.isArray(copy)) {
    ;(copy as Record<string, unknown>)[`x${head}`] = 1
    return copy
  }
  const k = keys[head % keys.length]!
  const next = rest.length === 0 ? x : mutate((copy as Record<string, unknown>)[k], rest, x, extraKey)
  if (next === undefined && !Array.isArray(copy)) delete (copy as Record<string, unknown>)[k]
  else (copy as Record<string, unknown>)[k] = next
  return copy
}

describe('zone route shape (hand-written route check)', () => {
  it('zone route shape - valid routes: ajv and the hand-written check agree (property)', () => {
    fc.assert(
      fc.property(validRoute, (r) => {
        expectAgree(r)
      }),
      { numRuns: 400 },
    )
  })

  it('zone route shape - one member broken, removed or added at any depth: both agree (property)', () => {
    fc.assert(
      fc.property(
        validRoute,
        fc.array(fc.nat(), { minLength: 1, maxLength: 5 }),
        hostile,
        fc.boolean(),
        (r, path, x, extraKey) => {
          expectAgree(mutate(r, path, x, extraKey))
        },
      ),
      { numRuns: 3000 },
    )
  })

  it('zone route shape - hand-picked edge cases agree with ajv', () => {
    const ok: TableRoute = {
      sni: 'a{mesh=default}',
      mesh: 'default',
      service: 'a',
      kind: 'external',
      mode: 'passthrough',
      upstreams: [{ address: '10.0.0.1', port: 443, weight: 1 }],
    }
    const cases: unknown[] = [
      ok,
      null,
      [],
      'route',
      { ...ok, upstreams: [] },
      { ...ok, allow: Array.from({ length: 10000 }, (_, i) => `s${i}`) },
      { ...ok, allow: Array.from({ length: 10001 }, (_, i) => `s${i}`) },
      { ...ok, allow: ['a', 'b', 'a'] },
      { ...ok, deny: ['constructor', 'constructor'] },
      // ajv's uniqueItems index is a plain object: it never sees a repeated "__proto__"
      { ...ok, allow: ['__proto__', '__proto__'] },
      JSON.parse(`{"__proto__": 1, ${JSON.stringify(ok).slice(1)}`),
      JSON.parse(JSON.stringify({ ...ok, upstreams: [{ ...ok.upstreams[0], zone: 'Zone-B' }] })),
      { ...ok, upstreams: [{ ...ok.upstreams[0], zone: '' }] },
      { ...ok, upstreams: [{ ...ok.upstreams[0], zone: 'a.' }] },
      { ...ok, upstreams: [{ ...ok.upstreams[0], tls: { enabled: true, caCert: 'no pem' } }] },
      { ...ok, upstreams: [{ ...ok.upstreams[0], tls: { enabled: true, caCert: `x${'y'.repeat(65536)}` } }] },
      { ...ok, upstreams: [{ ...ok.upstreams[0], port: Number.POSITIVE_INFINITY }] },
      { ...ok, sni: '😀'.repeat(4096) },
      { ...ok, sni: '😀'.repeat(4097) },
      { ...ok, sni: '\ud83d'.repeat(4096) },
      { ...ok, sni: '\ud83d'.repeat(4097) },
      { ...ok, tls: { enabled: true, serverName: '' } },
      Object.assign(Object.create({ inherited: 1 }), ok),
    ]
    for (const c of cases) expectAgree(c)
    expect(areValidRoutes([ok, ok])).toBe(true)
    expect(areValidRoutes([ok, { ...ok, mode: 'x' }])).toBe(false)
  })

  it('zone route shape - routes found sorted are written canonically by JSON.stringify; the digest from that text is tableDigest (property)', () => {
    fc.assert(
      fc.property(fc.array(validRoute, { maxLength: 4 }), fc.boolean(), (routes, meshes) => {
        const table = {
          zone: 'zone-a',
          egresses: [{ name: 'ze-a', port: 10002 }],
          routes: routes as TableRoute[],
          ...(meshes ? { meshes: [{ name: 'default', caCerts: [PEM] }] } : {}),
        }
        const canonical = canonicalJson(table.routes)
        // as generated (members in the generator's order) and as an egress parses the canonical JSON
        const parsed = JSON.parse(canonical) as unknown[]
        expect(checkRoutes(parsed)).toBe('sorted')
        expect(JSON.stringify(parsed)).toBe(canonical)
        if (checkRoutes(table.routes) === 'sorted') expect(JSON.stringify(table.routes)).toBe(canonical)
        const inner = canonical.slice(1, -1)
        expect(tableDigestOfRoutes(table, inner)).toBe(tableDigest(table))
        expect(tableDigestOfRoutes(table, Buffer.from(inner))).toBe(tableDigest(table))
      }),
      { numRuns: 300 },
    )
    const unsorted = {
      mesh: 'm',
      sni: 's',
      service: 's',
      kind: 'external',
      mode: 'passthrough',
      upstreams: [{ address: 'a', port: 1, weight: 1 }],
    }
    expect(checkRoutes([unsorted])).toBe('valid')
    expect(checkRoutes([{ ...unsorted, mode: 'x' }])).toBe('invalid')
  })
})
