import { describe, expect, it } from 'vitest'
import { validateSnapshot } from './index.js'
import { isDialString, overlapsLoopback } from './net.js'

/** Validation details of issue #10, each pinned to the Kuma code it follows (Kuma v2.14). */

const MESH = 'type: Mesh\nname: default\n'
const run = (yaml: string) =>
  validateSnapshot({
    revision: 'path:x',
    files: new Map([
      ['m.yaml', MESH],
      ['r.yaml', yaml],
    ]),
  }).violations.map((v) => `${v.path}: ${v.message}`)
const long = 'a'.repeat(254)
const prom = (re: string) =>
  `type: Mesh\nname: m2\nmetrics:\n  backends:\n    - name: p\n      type: prometheus\n      conf:\n        envoy:\n          filterRegex: '${re}'\n`

const zipkin = (conf: string) =>
  `type: Mesh\nname: m2\ntracing:\n  backends:\n    - name: z\n      type: zipkin\n      conf:\n${conf
    .split('\n')
    .map((l) => `        ${l}`)
    .join('\n')}\n`
const URL_AT = 'tracing.backends[0].config.url'

const cases: [string, string, string[]][] = [
  // mesh_validator.go validateZipkin: proto.ToTyped, then apiVersion, then url: empty / url.ParseRequestURI fails
  // ("invalid URL") / uri.Port() == "" ("port has to be explicitly specified"). Go's net/url as of Go 1.25.2+.
  ...(
    [
      ['http://zipkin:9411/api/v2/spans', []],
      ['https://user:pw@zipkin.example:9411/api/v2/spans?q=%zz', []], // the query is not unescaped by ParseRequestURI
      ['http://[::1]:9411/api/v2/spans', []],
      ['http://zipkin:9411/api#v2', []], // no fragment split in the request form: '#' is part of the path
      ['http://zipkin/api/v2/spans', ['port has to be explicitly specified']],
      ['http://zipkin:/api/v2/spans', ['port has to be explicitly specified']],
      ['http://[::1]/api/v2/spans', ['port has to be explicitly specified']],
      ['zipkin:9411', ['port has to be explicitly specified']], // scheme "zipkin", opaque "9411": no host
      ['/api/v2/spans', ['port has to be explicitly specified']],
      ['*', ['port has to be explicitly specified']],
      ['9411', ['invalid URL']], // invalid URI for request
      [':9411/api', ['invalid URL']], // missing protocol scheme
      ['http://zipkin:9411#spans', ['invalid URL']], // the '#' lands in the port
      ['http://zipkin:94a1/api', ['invalid URL']], // invalid port ":94a1" after host
      ['http://zip kin:9411/api', ['invalid URL']], // invalid character " " in host name
      ['http://zipkin:9411/api/%zz', ['invalid URL']], // invalid URL escape "%zz"
      ['http://us[er@zipkin:9411/api', ['invalid URL']], // invalid userinfo
      ['http://[10.0.0.1]:9411/api', ['invalid URL']], // only an IPv6 address may be bracketed
      ['http://[zipkin:9411/api', ['invalid URL']], // missing ']' in host
    ] as [string, string[]][]
  ).map(([url, want]): [string, string, string[]] => [
    `Zipkin url ${url}`,
    zipkin(`url: ${JSON.stringify(url)}`),
    want.map((m) => `${URL_AT}: ${m}`),
  ]),
  ['Zipkin url missing', zipkin('apiVersion: httpJson'), [`${URL_AT}: cannot be empty`]],
  ['Zipkin url null means not set', zipkin('url: null'), [`${URL_AT}: cannot be empty`]],
  [
    'Zipkin apiVersion is checked before the url, and both are reported',
    zipkin('url: ""\napiVersion: v9'),
    [
      'tracing.backends[0].config.apiVersion: has invalid value. Allowed values: httpJsonV1, httpJson, httpProto',
      `${URL_AT}: cannot be empty`,
    ],
  ],
  [
    'Zipkin url that is not a string: the typed config does not parse, nothing else is checked',
    zipkin('url: 9411\napiVersion: v9'),
    ['tracing.backends[0].config: could not parse config: invalid value for string field url: 9411'],
  ],
  [
    'Zipkin sharedSpanContext that is not a boolean: the typed config does not parse',
    zipkin('url: http://zipkin:9411/api\nsharedSpanContext: "true"'),
    ['tracing.backends[0].config: could not parse config: invalid value for bool field sharedSpanContext: "true"'],
  ],
  ['Zipkin unknown conf fields are ignored', zipkin('url: http://zipkin:9411/api\ncollector: x'), []],
  // pkg/core/resources/apis/mesh/zone_egress_validator.go: admin port vs port when the address overlaps 127.0.0.1
  // (overlap uses net.IP.Equal, which treats IPv4-mapped IPv6 as the IPv4 address)
  ...['::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:127.0.0.1', '::ffff:0.0.0.0'].map(
    (a): [string, string, string[]] => [
      `ZoneEgress admin port equal to port on ${a}`,
      `type: ZoneEgress\nname: ze\nnetworking:\n  address: "${a}"\n  port: 10002\n  admin:\n    port: 10002\n`,
      ['networking.admin.port: must differ from port'],
    ],
  ),
  [
    'ZoneEgress admin port equal to port on another IPv4-mapped address is fine',
    'type: ZoneEgress\nname: ze\nnetworking:\n  address: "::ffff:10.0.0.1"\n  port: 10002\n  admin:\n    port: 10002\n',
    [],
  ],
  // mesh_validator.go validateLoggingBackend: govalidator.IsDialString (IsPort = strconv.Atoi, 1..65535)
  [
    'TCP logging address with an IPv6 host and a signed port',
    'type: Mesh\nname: m2\nlogging:\n  backends:\n    - name: t\n      type: tcp\n      conf:\n        address: "[::1]:+514"\n',
    [],
  ],
  [
    'TCP logging address without a host',
    'type: Mesh\nname: m2\nlogging:\n  backends:\n    - name: t\n      type: tcp\n      conf:\n        address: ":514"\n',
    ['logging.backends[0].config.address: has to be in format of HOST:PORT'],
  ],
  // mesh_validator.go validatePrometheusConfig: regexp.Compile (Go RE2 syntax)
  ['Prometheus filterRegex with a named group (?P<n>…) is RE2', prom('(?P<stat>cluster\\..*)'), []],
  [
    'Prometheus filterRegex with a look-ahead is refused as RE2 refuses it',
    prom('cluster(?=\\.)'),
    [
      "metrics.backends[0].conf.envoy.filterRegex: provided regexp isn't correct: error parsing regexp: invalid or unsupported Perl syntax: `(?=`",
    ],
  ],
  // meta_validator.go: one violation per field (length, else characters)
  [
    'a name over 253 characters: the length only',
    `type: ZoneEgress\nname: ${long}\nnetworking:\n  port: 1\n`,
    ['name: value length must less or equal 253'],
  ],
  [
    'a Mesh name over 253 characters: the length only (meta fails before the mesh manager)',
    `type: Mesh\nname: ${long}\n`,
    ['name: value length must less or equal 253'],
  ],
  [
    'a mesh over 253 characters: the length only',
    `type: ExternalService\nname: es\nmesh: ${long}\ntags:\n  kuma.io/service: es\nnetworking:\n  address: es.example:443\n`,
    ['mesh: value length must less or equal 253'],
  ],
  // external_service_validator.go: "cannot be the same as networking.address" compares the service with the host
  [
    'empty service and empty host: no "same as networking.address"',
    'type: ExternalService\nname: es\nmesh: default\ntags:\n  kuma.io/service: ""\nnetworking:\n  address: ":443"\n',
    [
      'networking.address: address has to be a valid IP address or a domain name',
      'tags["kuma.io/service"]: tag value must be non-empty',
    ],
  ],
]

describe('validation details', () => {
  it.each(cases)('validation details - %s', (_t, yaml, expected) =>
    expect(run(yaml).sort()).toEqual([...expected].sort()),
  )
  it.each([
    ['127.0.0.1', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:7f00:1', true],
    ['::', true],
    ['0.0.0.0', true],
    ['127.0.0.2', false],
    ['::1', false],
    ['10.0.0.1', false],
    ['localhost', false],
  ])('validation details - overlapsLoopback(%s) is %s (Go net.IP.Equal)', (a, want) =>
    expect(overlapsLoopback(a)).toBe(want),
  )
  it.each([
    ['a:1', true],
    ['a:+1', true],
    ['a:0', false],
    ['a:65536', false],
    ['[::1]:80', true],
    ['::1:80', false],
  ])('validation details - isDialString(%s) is %s (govalidator)', (s, want) => expect(isDialString(s)).toBe(want))
})
