import { describe, expect, it } from 'vitest'
import { validateSnapshot } from './index.js'
import { isProtoBase64 } from './tags.js'

/**
 * Reading YAML as Kuma does. Kuma (`pkg/util/proto/proto.go`, FromYAML) converts YAML to JSON with
 * sigs.k8s.io/yaml (go-yaml v2, YAML 1.1) and decodes it with protojson (`google.golang.org/protobuf/encoding/protojson`,
 * decode.go: unmarshalInt accepts numbers in strings, null leaves a field unset, unmarshalBytes needs base64, a
 * oneof may be set once, and a field is found by its JSON name or its .proto name). Field names from Kuma's protos:
 * `api/mesh/v1alpha1/externalservice.proto` declares `ca_cert`, `client_cert`, `client_key`, `server_name`;
 * `api/mesh/v1alpha1/zone_ingress.proto` and `zoneegress.proto` declare camelCase names (`advertisedAddress`),
 * so `advertised_address` is unknown to Kuma (ignored) and only warned here.
 */

const MESH =
  'type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n    - name: ca-1\n      type: builtin\n'
const ES = (tls: string) =>
  `type: ExternalService\nname: api\nmesh: default\ntags:\n  kuma.io/service: api\nnetworking:\n  address: api.example.com:443\n  tls:\n${tls}`
const PEM = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'
const run = (yaml: string) =>
  validateSnapshot({
    revision: 'path:x',
    files: new Map([
      ['m.yaml', MESH],
      ['r.yaml', yaml],
    ]),
  })
const show = (v: { line: number; column: number; path: string; message: string }) =>
  `${v.line}:${v.column} ${v.path}: ${v.message}`

type Case = {
  title: string
  yaml: string
  violations?: string[]
  warnings?: string[]
  /** Checks the decoded resource (first of its kind in the result). */
  check?: (r: ReturnType<typeof run>) => void
}

const cases: Case[] = [
  {
    title: 'proto names of ExternalService TLS fields (ca_cert, server_name) are read as their JSON names',
    yaml: ES(
      `    enabled: true\n    server_name: api.internal\n    ca_cert:\n      inlineString: ${JSON.stringify(PEM)}\n`,
    ),
    check: (r) =>
      expect(r.resources.externalServices[0]?.resource.networking.tls).toEqual({
        enabled: true,
        serverName: 'api.internal',
        caCert: { inlineString: PEM },
      }),
  },
  {
    title: 'a violation inside a proto-named field points at the user line',
    yaml: ES('    enabled: true\n    client_key: {}\n'),
    violations: ['10:17 networking.tls.clientKey: data source cannot be empty'],
  },
  {
    title: 'the proto name and the JSON name of one field together is a violation (protojson: duplicate field)',
    yaml: ES('    serverName: a.example\n    server_name: b.example\n'),
    violations: [
      '10:5 networking.tls.server_name: duplicate field: "server_name" is the proto name of "serverName", which is also set',
    ],
  },
  {
    title: 'advertised_address is not a Kuma field (zone_ingress.proto says advertisedAddress): a warning naming it',
    yaml: 'type: ZoneIngress\nname: zi\nnetworking:\n  port: 10001\n  advertised_address: 1.2.3.4\n',
    warnings: [
      '5:3 networking.advertised_address: unknown field "advertised_address" (ignored by Kuma; the field is "advertisedAddress")',
    ],
  },
  {
    title: 'an integer written as a string (protojson unmarshalInt)',
    yaml: 'type: ZoneEgress\nname: ze\nnetworking:\n  port: "10002"\n  admin:\n    port: "9901"\n',
    check: (r) =>
      expect(r.resources.zoneEgresses[0]?.resource.networking).toEqual({ port: 10002, admin: { port: 9901 } }),
  },
  {
    title: 'an integer string in exponent form is an integer',
    yaml: 'type: ZoneEgress\nname: ze\nnetworking:\n  port: "1e3"\n',
    check: (r) => expect(r.resources.zoneEgresses[0]?.resource.networking.port).toBe(1000),
  },
  {
    title: 'a string that is not a JSON number stays a type error',
    yaml: 'type: ZoneEgress\nname: ze\nnetworking:\n  port: " 80"\n',
    violations: ['4:9 networking.port: must be integer'],
  },
  {
    title: 'availableServices instances as a string',
    yaml: 'type: ZoneIngress\nname: zi\nnetworking:\n  port: 1\navailableServices:\n  - mesh: default\n    instances: "3"\n    tags:\n      kuma.io/service: a\n',
    check: (r) => expect(r.resources.zoneIngresses[0]?.resource.availableServices?.[0]?.instances).toBe(3),
  },
  {
    title: 'null means not set',
    yaml: 'type: ZoneEgress\nname: ze\nzone: null\nlabels: ~\nnetworking:\n  address: null\n  port: 10002\n  admin: null\n',
    check: (r) =>
      expect(r.resources.zoneEgresses[0]?.resource).toEqual({
        type: 'ZoneEgress',
        name: 'ze',
        zone: 'default',
        networking: { port: 10002 },
      }),
  },
  {
    title: 'a null networking is a missing networking (port required)',
    yaml: 'type: ZoneEgress\nname: ze\nnetworking: null\n',
    violations: ['3:13 networking.port: port must be in the range [1, 65535]'],
  },
  {
    title: 'YAML 1.1 booleans (go-yaml v2): yes / on / off',
    yaml: 'type: Mesh\nname: m2\nmtls:\n  enabledBackend: ca\n  backends:\n    - name: ca\n      type: builtin\nrouting:\n  zoneEgress: yes\n  localityAwareLoadBalancing: On\nnetworking:\n  outbound:\n    passthrough: off\n',
    check: (r) => {
      const m = r.resources.meshes.find((x) => x.resource.name === 'm2')?.resource
      expect(m?.routing).toEqual({ zoneEgress: true, localityAwareLoadBalancing: true })
      expect(m?.networking?.outbound?.passthrough).toBe(false)
    },
  },
  {
    title: 'a quoted "yes" stays a string, which protojson refuses for a bool',
    yaml: 'type: Mesh\nname: m2\nrouting:\n  zoneEgress: "yes"\n',
    violations: ['4:15 routing.zoneEgress: must be boolean'],
  },
  {
    title: 'an enum by number (protojson accepts enum numbers): meshServices.mode 3 is Exclusive',
    yaml: 'type: Mesh\nname: m2\nmeshServices:\n  mode: 3\n',
    check: (r) =>
      expect(r.resources.meshes.find((x) => x.resource.name === 'm2')?.resource.meshServices?.mode).toBe('Exclusive'),
  },
  {
    title: 'a double written as a string (sampling)',
    yaml: 'type: Mesh\nname: m2\ntracing:\n  backends:\n    - name: z\n      type: zipkin\n      sampling: "50.5"\n      conf:\n        url: http://zipkin:9411/api/v2/spans\n',
    check: (r) =>
      expect(r.resources.meshes.find((x) => x.resource.name === 'm2')?.resource.tracing?.backends?.[0]?.sampling).toBe(
        50.5,
      ),
  },
  {
    title: 'inline base64 of a PEM (standard, padded)',
    yaml: ES(
      '    caCert:\n      inline: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBQUEKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=\n',
    ),
    violations: [],
  },
  {
    title: 'inline base64 without padding (protojson switches to NoPadding)',
    yaml: ES(
      '    caCert:\n      inline: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBQUEKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo\n',
    ),
    violations: [],
  },
  {
    title: 'inline that is not base64 is refused (protojson unmarshalBytes)',
    yaml: ES('    caCert:\n      inline: not base64!\n'),
    violations: ['10:15 networking.tls.caCert.inline: illegal base64 data at input byte 3'],
  },
  {
    title: 'two variants of one DataSource (a oneof) are refused',
    yaml: ES('    caCert:\n      secret: ca\n      inlineString: PEM\n'),
    violations: ['10:7 networking.tls.caCert: only one of secret, inlineString may be set (a data source is a oneof)'],
  },
]

describe('kuma decoding', () => {
  for (const c of cases)
    it(`kuma decoding - ${c.title}`, () => {
      const r = run(c.yaml)
      if (c.violations) expect(r.violations.map(show)).toEqual(c.violations)
      else expect(r.violations.map(show)).toEqual([])
      if (c.warnings) expect(r.warnings.map(show)).toEqual(c.warnings)
      c.check?.(r)
    })

  // protojson unmarshalBytes: URL-safe alphabet when - or _ occur; padding required iff the length is a multiple of 4
  const base64Cases: [string, boolean][] = [
    ['SGVsbG8=', true],
    ['SGVsbG8', true],
    ['_-8', true],
    ['_-8=', true],
    ['SGVsbG8gd', false],
    ['SGVs bG8=', false],
    ['SGVsbG8=\n', false],
    ['SG=sbG8', false],
    ['a+b_', false],
  ]
  it.each(base64Cases)('kuma decoding - isProtoBase64(%j) is %s', (text, ok) => expect(isProtoBase64(text)).toBe(ok))

  it('kuma decoding - the fast block parser and the yaml library read YAML 1.1 booleans alike', () => {
    const text = 'type: Mesh\nname: m2\nrouting:\n  zoneEgress: n\n  localityAwareLoadBalancing: Y\n'
    const fast = run(text).resources.meshes.find((m) => m.resource.name === 'm2')?.resource.routing
    const slow = run(`${text}labels: {a: b}\n`).resources.meshes.find((m) => m.resource.name === 'm2')?.resource.routing
    expect(fast).toEqual({ zoneEgress: false, localityAwareLoadBalancing: true })
    expect(slow).toEqual(fast)
  })
})
