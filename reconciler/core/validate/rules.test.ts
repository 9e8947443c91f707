import { describe, expect, it } from 'vitest'
import { validateSnapshot } from './index.js'

/** Validates one file (plus a `default` Mesh with mTLS so ExternalServices have a mesh) → `line:col path: message`. */
function check(yaml: string): { violations: string[]; warnings: string[]; rules: string[] } {
  const files = new Map<string, string>([
    ['r.yaml', yaml],
    [
      'zz-mesh.yaml',
      'type: Mesh\nname: default\nmtls:\n  enabledBackend: ca\n  backends:\n  - name: ca\n    type: builtin\n',
    ],
  ])
  const r = validateSnapshot({ revision: 'test', files })
  const show = (v: { line: number; column: number; path: string; message: string }) =>
    `${v.line}:${v.column} ${v.path}: ${v.message}`
  return { violations: r.violations.map(show), warnings: r.warnings.map(show), rules: r.violations.map((v) => v.rule) }
}

const ze = (net: string) => `type: ZoneEgress\nname: ze-1\nzone: zone-a\nnetworking:\n${net}`
const zi = (net: string, svc = '') => `type: ZoneIngress\nname: zi-1\nzone: zone-a\nnetworking:\n${net}${svc}`
const es = (body: string) => `type: ExternalService\nname: es-1\nmesh: default\n${body}`
const mesh = (body: string) => `type: Mesh\nname: m1\n${body}`

// [title, yaml, expected violations (empty = valid)]
const cases: [string, string, string[]][] = [
  // §3.0 meta
  ['meta - valid name with a dot', 'type: Mesh\nname: a.b\n', []],
  ['meta - unknown type', 'type: Meshh\nname: x\n', ['1:7 : invalid resource type "Meshh" (did you mean "Mesh"?)']],
  [
    'meta - missing type',
    'name: x\n',
    [
      '1:1 : invalid resource type "". Known types: Mesh, ZoneEgress, ZoneIngress, ExternalService, MeshTrafficPermission',
    ],
  ],
  ['meta - empty name', 'type: Mesh\nname: ""\n', ['2:7 name: cannot be empty']],
  [
    'meta - name with two dots',
    'type: Mesh\nname: two..dots\n',
    [
      "2:7 name: invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
    ],
  ],
  [
    'meta - name over 253 characters',
    `type: ZoneEgress\nname: ${'a'.repeat(254)}\nnetworking:\n  port: 1\n`,
    ['2:7 name: value length must less or equal 253'],
  ],
  [
    'meta - ExternalService without mesh',
    'type: ExternalService\nname: e\ntags:\n  kuma.io/service: e\nnetworking:\n  address: 127.0.0.1:80\n',
    ['1:1 mesh: cannot be empty'],
  ],
  [
    'meta - mesh with bad characters',
    'type: ExternalService\nname: e\nmesh: Bad\ntags:\n  kuma.io/service: e\nnetworking:\n  address: 127.0.0.1:80\n',
    ["3:7 mesh: invalid characters. Valid characters are numbers, lowercase latin letters and '-', '_', '.' symbols."],
  ],
  // Kuma accepts dotted zone names (meta_validator.go: resource names are RFC 1123 subdomains)
  ['meta - dotted zone name', 'type: ZoneEgress\nname: z\nzone: eu.west-1\nnetworking:\n  port: 1\n', []],
  [
    'meta - zone that is not an RFC 1123 subdomain',
    'type: ZoneEgress\nname: z\nzone: Zone_A\nnetworking:\n  port: 1\n',
    [
      "3:7 zone: invalid zone name. A zone name must be a lowercase RFC 1123 subdomain: at most 253 lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character",
    ],
  ],
  // §3.1 Mesh
  [
    'mesh - valid builtin with zoneEgress',
    mesh('mtls:\n  enabledBackend: ca\n  backends:\n  - name: ca\n    type: builtin\nrouting:\n  zoneEgress: true\n'),
    [],
  ],
  [
    'mesh - two backends with the same name',
    mesh('mtls:\n  backends:\n  - name: ca\n    type: builtin\n  - name: ca\n    type: builtin\n'),
    [
      '5:3 mtls.backends: cannot have more than 1 backends',
      '7:11 mtls.backends[1].name: "ca" name is already used for another backend',
    ],
  ],
  [
    'mesh - unknown enabledBackend',
    mesh('mtls:\n  enabledBackend: nope\n'),
    ['4:19 mtls.enabledBackend: has to be set to one of the backends in the mesh'],
  ],
  [
    'mesh - bad dpCert expiration',
    mesh('mtls:\n  backends:\n  - name: ca\n    type: builtin\n    dpCert:\n      rotation:\n        expiration: 2e\n'),
    ['9:21 mtls.dpcert.rotation.expiration: has to be a valid format'],
  ],
  [
    'mesh - zoneEgress without mtls',
    mesh('routing:\n  zoneEgress: true\n'),
    ['4:15 mtls: has to be set when zoneEgress enabled'],
  ],
  [
    'mesh - zoneEgress with backends but no enabledBackend',
    mesh('mtls:\n  backends:\n  - name: ca\n    type: builtin\nrouting:\n  zoneEgress: true\n'),
    ['4:3 mtls: has to be set when zoneEgress enabled'],
  ],
  [
    'mesh - name over 63 characters',
    `type: Mesh\nname: ${'m'.repeat(64)}\n`,
    ['2:7 name: cannot be longer than 63 characters'],
  ],
  [
    'mesh - backend type without plugin',
    mesh('mtls:\n  backends:\n  - name: ca\n    type: vault\n'),
    ['6:11 mtls.backends[0].type: could not find installed plugin for this type'],
  ],
  [
    'mesh - provided backend without cert and key',
    mesh('mtls:\n  backends:\n  - name: ca\n    type: provided\n    conf:\n      cert:\n        secret: ""\n'),
    ['8:7 mtls.backends[0].conf.key: has to be defined', '9:17 mtls.backends[0].conf.cert.secret: cannot be empty'],
  ],
  // §3.1b
  [
    'mesh - logging backends',
    mesh(
      'logging:\n  defaultBackend: x\n  backends:\n  - name: ""\n    type: tcp\n  - name: f\n    type: file\n    conf:\n      path: /tmp/a\n  - name: f\n    type: tcp\n    conf:\n      address: nohost\n  - name: u\n    type: udp\n',
    ),
    [
      '4:19 logging.defaultBackend: has to be set to one of the logging backend in mesh',
      '6:5 logging.backends[0].config.address: cannot be empty',
      '6:11 logging.backends[0].name: cannot be empty',
      '12:11 logging.backends[2].name: "f" name is already used for another backend',
      '15:16 logging.backends[2].config.address: has to be in format of HOST:PORT',
      '17:11 logging.backends[3].type: unknown backend type. Available backends: "tcp", "file"',
    ],
  ],
  [
    'mesh - tracing backends',
    mesh(
      'tracing:\n  backends:\n  - name: z\n    type: zipkin\n    sampling: 100.1\n    conf:\n      url: http://zipkin\n      apiVersion: v9\n  - name: d\n    type: datadog\n    conf:\n      port: 0\n',
    ),
    [
      '7:15 tracing.backends[0].sampling: has to be in [0.0 - 100.0] range',
      '9:12 tracing.backends[0].config.url: port has to be explicitly specified',
      '10:19 tracing.backends[0].config.apiVersion: has invalid value. Allowed values: httpJsonV1, httpJson, httpProto',
      '14:7 tracing.backends[1].config.address: cannot be empty',
      '14:13 tracing.backends[1].config.port: port must be in the range [1, 65535]',
    ],
  ],
  [
    'mesh - metrics backends',
    mesh(
      'metrics:\n  enabledBackend: nope\n  backends:\n  - name: p\n    type: prometheus\n    conf:\n      skipMTLS: true\n      tls:\n        mode: activeMTLSBackend\n  - name: p\n    type: statsd\n',
    ),
    [
      '4:19 metrics.enabledBackend: has to be set to one of the backends in the mesh',
      '9:7 metrics.backends[0].conf: skipMTLS and tls configuration cannot be defined together',
      '12:11 metrics.backends[1].name: "p" name is already used for another backend',
      '13:11 metrics.backends[1].type: unknown backend type. Available backends: "prometheus"',
    ],
  ],
  [
    'mesh - constraints tags',
    mesh(
      'constraints:\n  dataplaneProxy:\n    requirements:\n    - tags: {}\n    restrictions:\n    - tags:\n        k: "a b"\n',
    ),
    [
      '6:13 constraints.dataplaneProxy.requirements[0].tags: must have at least one tag',
      '9:12 constraints.dataplaneProxy.restrictions[0].tags["k"]: tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be "*"',
    ],
  ],
  // §3.2 ZoneEgress
  ['zone-egress - valid', ze('  address: 10.0.0.1\n  port: 10002\n  admin:\n    port: 10002\n'), []],
  ['zone-egress - no port', ze('  address: 10.0.0.1\n'), ['5:3 networking.port: port must be in the range [1, 65535]']],
  [
    'zone-egress - no networking',
    'type: ZoneEgress\nname: ze\n',
    ['1:1 networking.port: port must be in the range [1, 65535]'],
  ],
  [
    'zone-egress - admin port equal to port on loopback',
    ze('  address: 127.0.0.1\n  port: 9901\n  admin:\n    port: 9901\n'),
    ['8:11 networking.admin.port: must differ from port'],
  ],
  [
    'zone-egress - unspecified address',
    ze('  address: 0.0.0.0\n  port: 1\n'),
    ['5:12 networking.address: must not be 0.0.0.0 or ::'],
  ],
  [
    'zone-egress - bad address',
    ze('  address: "a b"\n  port: 1\n'),
    ['5:12 networking.address: address has to be valid IP address or domain name'],
  ],
  [
    'zone-egress - port over 65535',
    ze('  port: 65536\n'),
    ['5:9 networking.port: port must be in the range [1, 65535]'],
  ],
  ['zone-egress - negative port is a type error', ze('  port: -1\n'), ['5:9 networking.port: must be >= 0']],
  // §3.3 ZoneIngress
  [
    'zone-ingress - valid with advertised pair',
    zi('  port: 10001\n  advertisedAddress: 192.0.2.1\n  advertisedPort: 10001\n'),
    [],
  ],
  ['zone-ingress - valid without advertised pair', zi('  port: 10001\n'), []],
  [
    'zone-ingress - bad advertised address, port and services',
    zi(
      '  port: 10001\n  advertisedAddress: "!@#"\n  advertisedPort: 100000\n',
      'availableServices:\n- tags:\n    app: x\n- tags:\n    kuma.io/service: ""\n',
    ),
    [
      '6:22 networking.advertisedAddress: address has to be valid IP address or domain name',
      '7:19 networking.advertisedPort: port must be in the range [1, 65535]',
      '10:5 availableServices[0].tags: mandatory tag "kuma.io/service" is missing',
      '12:22 availableServices[1].tags["kuma.io/service"]: tag value must be non-empty',
    ],
  ],
  [
    'zone-ingress - advertisedPort alone',
    zi('  port: 1\n  advertisedPort: 5\n'),
    ['5:3 networking.advertisedAddress: has to be defined with advertisedPort'],
  ],
  [
    'zone-ingress - advertisedAddress alone',
    zi('  port: 1\n  advertisedAddress: 192.0.2.1\n'),
    ['5:3 networking.advertisedPort: has to be defined with advertisedAddress'],
  ],
  [
    'zone-ingress - admin port equal to port on loopback',
    zi('  address: 127.0.0.1\n  port: 9901\n  admin:\n    port: 9901\n'),
    ['8:11 networking.admin.port: must differ from port'],
  ],
  // §3.4 ExternalService
  ['external-service - valid IPv6', es('tags:\n  kuma.io/service: e\nnetworking:\n  address: "[::1]:443"\n'), []],
  [
    'external-service - valid domain',
    es('tags:\n  kuma.io/service: e\n  kuma.io/valid: x\nnetworking:\n  address: example.com:443\n'),
    [],
  ],
  ['external-service - no networking', es('tags:\n  kuma.io/service: e\n'), ['1:1 networking: should have networking']],
  [
    'external-service - empty address',
    es('tags:\n  kuma.io/service: e\nnetworking:\n  address: ""\n'),
    ["7:12 networking.address: address can't be empty"],
  ],
  [
    'external-service - address without port',
    es('tags:\n  kuma.io/service: e\nnetworking:\n  address: example.com\n'),
    [
      '7:12 networking.address: address has to be a valid IP address or a domain name',
      '7:12 networking.address: port must be in the range [1, 65535]',
      '7:12 networking.address: unable to parse address',
      '7:12 networking.address: unable to parse port in address',
    ],
  ],
  [
    'external-service - port 65536',
    es('tags:\n  kuma.io/service: e\nnetworking:\n  address: a.com:65536\n'),
    ['7:12 networking.address: port must be in the range [1, 65535]'],
  ],
  [
    'external-service - tls',
    es('tags:\n  kuma.io/service: e\nnetworking:\n  address: a.com:443\n  tls:\n    serverName: ""\n    caCert: {}\n'),
    ['9:17 networking.tls.serverName: cannot be empty', '10:13 networking.tls.caCert: data source cannot be empty'],
  ],
  [
    'external-service - missing service tag',
    es('tags:\n  app: e\nnetworking:\n  address: a.com:443\n'),
    ['5:3 tags: mandatory tag "kuma.io/service" is missing'],
  ],
  [
    'external-service - empty protocol',
    es('tags:\n  kuma.io/service: e\n  kuma.io/protocol: ""\nnetworking:\n  address: a.com:443\n'),
    [
      '6:21 tags["kuma.io/protocol"]: tag "kuma.io/protocol" has an invalid value "". Allowed values: grpc, http, http2, kafka, tcp',
      '6:21 tags["kuma.io/protocol"]: tag value must be non-empty',
    ],
  ],
  [
    'external-service - bad tag characters',
    es('tags:\n  kuma.io/service: e\n  "a b": x\n  v: "x/y"\nnetworking:\n  address: a.com:443\n'),
    [
      '6:10 tags["a b"]: tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores',
      '7:6 tags["v"]: tag value must consist of alphanumeric characters, dots, dashes and underscores',
    ],
  ],
  [
    'external-service - service equals the address host',
    es('tags:\n  kuma.io/service: a.com\nnetworking:\n  address: a.com:443\n'),
    ['5:20 tags["kuma.io/service"]: cannot be the same as networking.address'],
  ],
  ['schema - wrong type', ze('  port: "eighty"\n'), ['5:9 networking.port: must be integer']],
]

describe('validate rules', () => {
  it.each(cases)('%s', (_title, yaml, expected) => {
    expect(check(yaml).violations).toEqual(expected)
  })

  it('rules - every violation has a stable rule id', () => {
    const { rules } = check(mesh('routing:\n  zoneEgress: true\n'))
    expect(rules).toEqual(['mesh.zone-egress-requires-mtls'])
  })

  it('schema - unknown field is a warning at the key position, not a violation', () => {
    const r = check(ze('  port: 1\n  prot: 2\n'))
    expect(r.violations).toEqual([])
    expect(r.warnings).toEqual(['6:3 networking.prot: unknown field "prot" (ignored by Kuma)'])
  })
})
