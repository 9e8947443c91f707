import { describe, expect, it } from 'vitest'
import { validateSnapshot } from './index.js'

const MESH_MTLS =
  'type: Mesh\nname: default\nmtls:\n  enabledBackend: ca\n  backends:\n  - name: ca\n    type: builtin\nrouting:\n  zoneEgress: true\n'
const egress = (zone: string, name = 'ze-1') =>
  `type: ZoneEgress\nname: ${name}\nzone: ${zone}\nnetworking:\n  port: 10002\n`
const ingress = (zone: string) => `type: ZoneIngress\nname: zi-1\nzone: ${zone}\nnetworking:\n  port: 10001\n`
const es = (name: string, mesh = 'default', extra = '') =>
  `type: ExternalService\nname: ${name}\nmesh: ${mesh}\ntags:\n  kuma.io/service: ${name}\n${extra}networking:\n  address: 127.0.0.1:80\n`

function run(files: Record<string, string>) {
  const r = validateSnapshot({ revision: 't', files: new Map(Object.entries(files)) }, { defaultZone: 'default' })
  const show = (v: { file: string; line: number; column: number; path: string; message: string; rule: string }) =>
    `${v.file}:${v.line}:${v.column} ${v.path}: ${v.message} [${v.rule}]`
  return { r, violations: r.violations.map(show), warnings: r.warnings.map(show) }
}

// [title, files, violations, warnings]
const cases: [string, Record<string, string>, string[], string[]][] = [
  [
    'cross - valid pair of zones',
    { 'm.yaml': MESH_MTLS, 'a.yaml': `${egress('zone-a')}---\n${ingress('zone-a')}` },
    [],
    [],
  ],
  [
    'cross - ExternalService of a missing mesh',
    { 'e.yaml': es('httpbin', 'nope') },
    ['e.yaml:3:7 : mesh of name nope is not found [external-service.mesh-not-found]'],
    [],
  ],
  [
    'cross - duplicate Mesh',
    { 'a.yaml': MESH_MTLS, 'b.yaml': MESH_MTLS },
    ['b.yaml:2:7 name: Mesh "default" is already defined at a.yaml:1:1 [resource.duplicate]'],
    [],
  ],
  [
    'cross - duplicate ZoneEgress in one zone',
    { 'a.yaml': `${egress('zone-a')}---\n${egress('zone-a')}` },
    ['a.yaml:8:7 name: ZoneEgress "ze-1" in zone "zone-a" is already defined at a.yaml:1:1 [resource.duplicate]'],
    [],
  ],
  [
    'cross - same ZoneEgress name in two zones is fine',
    { 'a.yaml': `${egress('zone-a')}---\n${egress('zone-b')}` },
    [],
    [],
  ],
  [
    'cross - ZoneEgress without zone belongs to the default zone',
    { 'a.yaml': `${egress('default')}---\n${egress('""')}` },
    ['a.yaml:8:7 name: ZoneEgress "ze-1" in zone "default" is already defined at a.yaml:1:1 [resource.duplicate]'],
    [],
  ],
  [
    'cross - duplicate ExternalService in one mesh',
    { 'm.yaml': MESH_MTLS, 'e.yaml': `${es('x')}---\n${es('x')}` },
    ['e.yaml:10:7 name: ExternalService "x" in mesh "default" is already defined at e.yaml:1:1 [resource.duplicate]'],
    [],
  ],
  [
    'cross - zoneEgress mesh and a zone with ingresses but no egress',
    { 'm.yaml': MESH_MTLS, 'a.yaml': ingress('zone-b') },
    [],
    [
      'm.yaml:9:15 routing.zoneEgress: zone "zone-b" has ZoneIngresses but no ZoneEgress: cross-zone and external traffic of this mesh from there has no egress [mesh.zone-without-egress]',
    ],
  ],
  [
    'cross - ExternalService pinned to a zone without egress',
    { 'm.yaml': MESH_MTLS, 'z.yaml': egress('zone-a'), 'e.yaml': es('x', 'default', '  kuma.io/zone: zone-b\n') },
    [],
    [
      'e.yaml:6:17 tags["kuma.io/zone"]: zone "zone-b" has no ZoneEgress: the service is pinned there and no egress can reach it [external-service.zone-without-egress]',
    ],
  ],
  [
    'cross - ExternalService pinned to a zone with an egress',
    { 'm.yaml': MESH_MTLS, 'z.yaml': egress('zone-a'), 'e.yaml': es('x', 'default', '  kuma.io/zone: zone-a\n') },
    [],
    [],
  ],
]

describe('validate cross-resource rules', () => {
  it.each(cases)('%s', (_title, files, violations, warnings) => {
    const out = run(files)
    expect(out.violations).toEqual(violations)
    expect(out.warnings).toEqual(warnings)
    expect(out.r.valid).toBe(violations.length === 0)
  })

  it('cross - resources exclude invalid and duplicate documents and fill the default zone', () => {
    const { r } = run({ 'a.yaml': `${egress('""')}---\n${egress('""')}---\n${egress('zone-a', 'ok')}` })
    expect(r.resources.zoneEgresses.map((e) => `${e.resource.zone}/${e.resource.name}`)).toEqual([
      'default/ze-1',
      'zone-a/ok',
    ])
    expect(r.resources.zoneEgresses[1]!.location).toEqual({ file: 'a.yaml', line: 13, column: 1 })
  })
})
