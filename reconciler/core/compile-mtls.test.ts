import { describe, expect, it } from 'vitest'
import { canonicalJson, tableDigest } from '../../schemas/digest.js'
import { validateZoneTableShape } from '../../schemas/validators.js'
import { canonicalRouteJson, compileZoneTables } from './compile.js'
import { createBuiltinCa } from './pki/index.js'
import { validateSnapshot } from './validate/index.js'

/**
 * Compile with mesh mTLS (issue 9): per-upstream TLS from each ExternalService (PEM from data sources), route
 * `allow`/`deny` from MeshTrafficPermissions, `meshes` with the enabled CA's certificates, and the digest over them.
 */
const CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n'
const CA2 = '-----BEGIN CERTIFICATE-----\nMIIBother\n-----END CERTIFICATE-----\n'
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n'

const files = (extra: Record<string, string> = {}) =>
  new Map<string, string>(
    Object.entries({
      'mesh.yaml':
        'type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n  - name: ca-1\n    type: builtin\n',
      'ze.yaml': 'type: ZoneEgress\nname: ze\nzone: a\nnetworking:\n  port: 10002\n',
      'es.yaml': `type: ExternalService
name: api-1
mesh: default
tags:
  kuma.io/service: api
networking:
  address: api.example.com:443
  tls:
    enabled: true
    caCert:
      file: certs/api-ca.pem
    clientCert:
      inlineString: |
        -----BEGIN CERTIFICATE-----
        MIIBfake
        -----END CERTIFICATE-----
    clientKey:
      inline: ${Buffer.from(KEY).toString('base64')}
    skipHostnameVerification: true
---
type: ExternalService
name: api-2
mesh: default
tags:
  kuma.io/service: api
networking:
  address: api-plain.example.com:8080
`,
      'certs/api-ca.pem': CA2,
      ...extra,
    }),
  )

function compile(f: Map<string, string>, builtin?: Map<string, string[]>) {
  const v = validateSnapshot({ revision: 't', files: f })
  expect(v.violations).toEqual([])
  return compileZoneTables(v.resources, builtin ? { builtinCaCerts: builtin } : {}).get('a')!
}

describe('compile with mesh mTLS', () => {
  it('compile mtls - TLS per upstream, PEM from data sources; a plain endpoint has none', () => {
    const t = compile(files())
    const route = t.routes[0]!
    expect(route.tls).toBeUndefined()
    expect(route.upstreams).toEqual([
      { address: 'api-plain.example.com', port: 8080, weight: 1 },
      {
        address: 'api.example.com',
        port: 443,
        weight: 1,
        tls: {
          enabled: true,
          serverName: 'api.example.com',
          caCert: CA2,
          clientCert: CA,
          clientKey: KEY,
          skipHostnameVerification: true,
        },
      },
    ])
    expect(validateZoneTableShape(t)).toEqual([])
    expect(canonicalRouteJson(route)).toBe(canonicalJson(route))
  })

  it('compile mtls - no permission: allow []; a permission: its callers; Allow Mesh + Deny one: * with deny', () => {
    expect(compile(files()).routes[0]?.allow).toEqual([])
    const allowWeb = `type: MeshTrafficPermission
name: p
mesh: default
spec:
  targetRef:
    kind: MeshService
    name: api
  from:
  - targetRef:
      kind: MeshService
      name: web
    default:
      action: Allow
`
    expect(compile(files({ 'p.yaml': allowWeb })).routes[0]?.allow).toEqual(['web'])
    const allButBad = `type: MeshTrafficPermission
name: p
mesh: default
spec:
  from:
  - targetRef:
      kind: Mesh
    default:
      action: Allow
  - targetRef:
      kind: MeshSubset
      tags:
        kuma.io/service: bad
    default:
      action: Deny
`
    const r = compile(files({ 'p.yaml': allButBad })).routes[0]!
    expect([r.allow, r.deny]).toEqual([['*'], ['bad']])
    expect(canonicalRouteJson(r)).toBe(canonicalJson(r))
  })

  it('compile mtls - meshes: builtin certificates passed in, provided from the Mesh; the digest covers them', () => {
    const offline = compile(files())
    expect(offline.meshes).toBeUndefined()
    const withCa = compile(files(), new Map([['default', [CA]]]))
    expect(withCa.meshes).toEqual([{ name: 'default', caCerts: [CA] }])
    expect(withCa.digest).toBe(tableDigest(withCa))
    expect(withCa.digest).not.toBe(offline.digest)
    expect(offline.digest).toBe(tableDigest(offline))
    expect(validateZoneTableShape(withCa)).toEqual([])
  })

  it('compile mtls - a provided CA: its certificate from the Mesh data source, no key anywhere', async () => {
    const ca = await createBuiltinCa({ mesh: 'default', rsaBits: 2048, lifetimeMs: 3_600_000, now: new Date() })
    const mesh = `type: Mesh
name: default
mtls:
  enabledBackend: own
  backends:
  - name: own
    type: provided
    conf:
      cert:
        file: ca/ca.crt
      key:
        inline: ${Buffer.from(ca.key).toString('base64')}
`
    const t = compile(files({ 'mesh.yaml': mesh, 'ca/ca.crt': ca.cert }))
    expect(t.meshes).toEqual([{ name: 'default', caCerts: [ca.cert] }])
    expect(JSON.stringify(t)).not.toContain(ca.key.split('\n')[1])
  })

  it('compile mtls - a mesh with mTLS but no external route in the zone gets no meshes entry', () => {
    const f = files()
    f.delete('es.yaml')
    f.set('ze.yaml', 'type: ZoneEgress\nname: ze\nzone: a\nnetworking:\n  port: 10002\n')
    const v = validateSnapshot({ revision: 't', files: f })
    const t = compileZoneTables(v.resources, { builtinCaCerts: new Map([['default', [CA]]]) }).get('a')!
    expect(t.meshes).toBeUndefined()
  })
})

describe('canonicalRouteJson and upstream priority', () => {
  it('a locality priority on an upstream is in the hand-written route JSON as in canonicalJson (the egress recomputes the digest)', () => {
    const route = {
      sni: 'billing{mesh=default}',
      mesh: 'default',
      service: 'billing',
      kind: 'cross-zone' as const,
      mode: 'passthrough' as const,
      upstreams: [{ address: '127.0.0.1', port: 10001, weight: 3, zone: 'zone-b', priority: 1 }],
    }
    expect(canonicalRouteJson(route)).toBe(canonicalJson(route))
  })
})
