import { beforeAll, describe, expect, it } from 'vitest'
import { type CaMaterial, createBuiltinCa } from '../pki/index.js'
import { validateSnapshot } from './index.js'

/**
 * The mesh mTLS rules with Kuma's paths and messages: provided CA data sources (Kuma's `ValidateSource`,
 * `tls.X509KeyPair`, `ValidateCaCert`), builtin backend names (builtin CA manager), MeshTrafficPermission
 * (`meshtrafficpermission/api/v1alpha1/validator.go`, `ValidateTargetRef`), ExternalService TLS data.
 */

let ca: CaMaterial
let other: CaMaterial
beforeAll(async () => {
  const now = new Date()
  ca = await createBuiltinCa({ mesh: 'm1', rsaBits: 2048, lifetimeMs: 3_600_000, now })
  other = await createBuiltinCa({ mesh: 'm2', rsaBits: 2048, lifetimeMs: 3_600_000, now })
})

function check(yaml: string, extra: Record<string, string> = {}): string[] {
  const files = new Map<string, string>([
    ['r.yaml', yaml],
    [
      'zz-mesh.yaml',
      'type: Mesh\nname: default\nmtls:\n  enabledBackend: ca\n  backends:\n  - name: ca\n    type: builtin\n',
    ],
    ...Object.entries(extra),
  ])
  const r = validateSnapshot({ revision: 'test', files })
  return r.violations.map((v) => `${v.line}:${v.column} ${v.path}: ${v.message}`)
}

const provided = (cert: string, key: string) =>
  `type: Mesh\nname: m1\nmtls:\n  enabledBackend: p\n  backends:\n  - name: p\n    type: provided\n    conf:\n      cert:\n${cert}      key:\n${key}`
const b64 = (s: string) => Buffer.from(s).toString('base64')

describe('mesh mTLS validation', () => {
  it('provided CA - file, inline and inlineString data sources with a valid CA pair are accepted', () => {
    const files = { 'certs/ca.pem': ca.cert, 'certs/ca.key': ca.key }
    expect(check(provided('        file: certs/ca.pem\n', '        file: ./certs/ca.key\n'), files)).toEqual([])
    expect(check(provided(`        inline: ${b64(ca.cert)}\n`, `        inline: ${b64(ca.key)}\n`))).toEqual([])
    const indent = (s: string) => s.trimEnd().replace(/\n/g, '\n          ')
    expect(
      check(
        provided(
          `        inlineString: |\n          ${indent(ca.cert)}\n`,
          `        inlineString: |\n          ${indent(ca.key)}\n`,
        ),
      ),
    ).toEqual([])
  })

  it('provided CA - Kuma data-source messages', () => {
    expect(check(provided('        {}\n', '        inline: ""\n'))).toEqual([
      '10:9 mtls.backends[0].conf.cert: data source has to be chosen. Available sources: secret, file, inline',
      '12:17 mtls.backends[0].conf.key.inline: cannot be empty',
    ])
    expect(check(provided('        file: ""\n', '        secret: ca-key\n'))).toEqual([
      '10:15 mtls.backends[0].conf.cert.file: cannot be empty',
      '12:17 mtls.backends[0].conf.key.secret: secret data sources are not supported by zonegate (it has no secret store), use file or inline',
    ])
  })

  it('provided CA - files must stay inside the repository and exist', () => {
    expect(check(provided('        file: ../ca.pem\n', '        file: /etc/ca.key\n'))).toEqual([
      '10:15 mtls.backends[0].conf.cert.file: "../ca.pem" is not a path inside the repository: file data sources are relative to the repository path, without ".."',
      '12:15 mtls.backends[0].conf.key.file: "/etc/ca.key" is not a path inside the repository: file data sources are relative to the repository path, without ".."',
    ])
    expect(check(provided('        file: missing.pem\n', '        file: r.yaml\n'))).toEqual([
      '10:15 mtls.backends[0].conf.cert.file: "missing.pem" is not in the repository snapshot',
      '12:15 mtls.backends[0].conf.key.file: "r.yaml": file data sources must be *.pem, *.crt, *.cert or *.key files',
    ])
  })

  it('provided CA - a pair that does not match, or a certificate that is no CA, gets Kuma messages', () => {
    expect(check(provided(`        inline: ${b64(ca.cert)}\n`, `        inline: ${b64(other.key)}\n`))).toEqual([
      '10:9 mtls.backends[0].conf.cert: not a valid TLS key pair: tls: private key does not match public key',
    ])
    expect(check(provided(`        inline: ${b64('garbage')}\n`, `        inline: ${b64(ca.key)}\n`))).toEqual([
      '10:9 mtls.backends[0].conf.cert: not a valid TLS key pair: tls: failed to find any PEM data in certificate input',
    ])
    expect(check(provided('        inline: "%%%"\n', `        inline: ${b64(ca.key)}\n`))).toEqual([
      '10:17 mtls.backends[0].conf.cert.inline: illegal base64 data at input byte 0',
    ])
  })

  it('provided CA - skipValidation skips the plugin checks, as Kuma does', () => {
    const yaml = provided('        file: nope.pem\n', '        file: nope.key\n').replace(
      'mtls:\n',
      'mtls:\n  skipValidation: true\n',
    )
    expect(check(yaml)).toEqual([])
  })

  it('builtin CA - backend names: `_` allowed, labels up to 63, the backend name quoted', () => {
    const builtin = (name: string) =>
      `type: Mesh\nname: m1\nmtls:\n  enabledBackend: ${name}\n  backends:\n  - name: ${name}\n    type: builtin\n`
    expect(check(builtin('ca_1'))).toEqual([])
    expect(check(builtin('a'.repeat(63)))).toEqual([
      `6:11 mtls.backends[0].conf.mtls.backends.name: "${'a'.repeat(63)}" name must be valid dns name`,
    ])
    expect(check(builtin('a'.repeat(47)))).toEqual([]) // label "ca-builtin-cert-" + 47 = 63 characters
    expect(check(builtin('a b'))).toEqual([
      '6:11 mtls.backends[0].conf.mtls.backends.name: "a b" name must be valid dns name',
    ])
  })

  it('builtin CA - conf.caCert: expiration in Kuma format, RSAbits bounded', () => {
    const conf = (c: string) =>
      `type: Mesh\nname: m1\nmtls:\n  enabledBackend: b\n  backends:\n  - name: b\n    type: builtin\n    conf:\n      caCert:\n${c}`
    expect(check(conf('        RSAbits: 4096\n        expiration: 5y\n'))).toEqual([])
    expect(check(conf('        RSAbits: "2048"\n'))).toEqual([])
    expect(check(conf('        RSAbits: 100000\n        expiration: 10 years\n'))).toEqual([
      '10:18 mtls.backends[0].conf.caCert.RSAbits: must be a number of bits from 1024 to 8192 (zonegate creates the key in the reconciler)',
      '11:21 mtls.backends[0].conf.caCert.expiration: has to be a valid format',
    ])
  })

  it('ExternalService TLS data - PEM from data sources, secret refused', () => {
    const es = (tls: string) =>
      `type: ExternalService\nname: e\nmesh: default\ntags:\n  kuma.io/service: e\nnetworking:\n  address: api.example.com:443\n  tls:\n    enabled: true\n${tls}`
    expect(
      check(es('    caCert:\n      file: ca.pem\n    clientCert:\n      inlineString: x\n'), { 'ca.pem': ca.cert }),
    ).toEqual(['13:7 networking.tls.clientCert: must hold PEM certificates'])
    expect(check(es('    clientKey:\n      secret: k\n'))).toEqual([
      '11:15 networking.tls.clientKey.secret: secret data sources are not supported by zonegate (it has no secret store), use file or inline',
    ])
    expect(check(es(`    clientKey:\n      inline: ${b64(ca.key)}\n`))).toEqual([])
  })
})

const mtp = (spec: string, mesh = 'default') => `type: MeshTrafficPermission\nname: p\nmesh: ${mesh}\nspec:\n${spec}`

describe('MeshTrafficPermission validation', () => {
  it.each([
    [
      'valid: MeshService from MeshSubset with a service tag',
      mtp(
        '  targetRef:\n    kind: MeshService\n    name: httpbin\n  from:\n  - targetRef:\n      kind: MeshSubset\n      tags:\n        kuma.io/service: web\n    default:\n      action: Allow\n',
      ),
      [],
    ],
    [
      'valid: no top targetRef (the mesh)',
      mtp('  from:\n  - targetRef:\n      kind: Mesh\n    default:\n      action: Deny\n'),
      [],
    ],
    ['no from', mtp('  targetRef:\n    kind: Mesh\n'), ['5:3 spec.from: needs at least one item']],
    [
      'the rules form (Kuma 2.12+) is refused, not ignored',
      mtp(
        '  targetRef:\n    kind: Mesh\n  rules:\n  - default:\n      allow:\n      - spiffeID:\n          type: Exact\n          value: spiffe://default/web\n',
      ),
      [
        '8:3 spec.rules: the rules form (SPIFFE ID matches, Kuma 2.12+) is not supported by zonegate: write the permission with spec.from[] (targetRef kind Mesh, MeshSubset with kuma.io/service, or MeshService) and default.action',
      ],
    ],
    [
      'unsupported kinds and missing kind',
      mtp(
        '  targetRef:\n    kind: MeshGateway\n  from:\n  - targetRef:\n      kind: Dataplane\n    default:\n      action: Allow\n  - targetRef: {}\n    default:\n      action: Allow\n',
      ),
      [
        '6:11 spec.targetRef.kind: value is not supported',
        '9:13 spec.from[0].targetRef.kind: value is not supported',
        '12:16 spec.from[1].targetRef.kind: must be defined',
      ],
    ],
    [
      'name and tags by kind',
      mtp(
        '  targetRef:\n    kind: MeshService\n  from:\n  - targetRef:\n      kind: Mesh\n      name: x\n    default:\n      action: Allow\n  - targetRef:\n      kind: MeshSubset\n      name: yy\n      tags:\n        kuma.io/service: ""\n    default:\n      action: Allow\n',
      ),
      [
        '6:5 spec.targetRef.name: must be set with kind MeshService',
        '10:13 spec.from[0].targetRef.name: using name with kind Mesh is not yet supported',
        '15:13 spec.from[1].targetRef.name: must not be set with kind MeshSubset',
        '17:26 spec.from[1].targetRef.tags["kuma.io/service"]: tag value must be non-empty',
      ],
    ],
    [
      'action missing',
      mtp('  from:\n  - targetRef:\n      kind: Mesh\n  - targetRef:\n      kind: Mesh\n    default: {}\n'),
      ['6:5 spec.from[0].default.action: must be defined', '10:14 spec.from[1].default.action: must be defined'],
    ],
    [
      'action unknown (schema)',
      mtp('  from:\n  - targetRef:\n      kind: Mesh\n    default:\n      action: Permit\n'),
      ['9:15 spec.from[0].default.action: must be equal to one of the allowed values'],
    ],
    [
      'mesh must exist',
      mtp('  from:\n  - targetRef:\n      kind: Mesh\n    default:\n      action: Allow\n', 'nope'),
      ['3:7 : mesh of name nope is not found'],
    ],
  ])('mtp - %s', (_title, yaml, expected) => {
    expect(check(yaml)).toEqual(expected)
  })
})

describe('MeshTrafficPermission warnings (egress limits)', () => {
  it('mtp - caller tags other than kuma.io/service and Dataplane targets are warnings, not violations', () => {
    const yaml = mtp(
      '  targetRef:\n    kind: Dataplane\n  from:\n  - targetRef:\n      kind: MeshSubset\n      tags:\n        kuma.io/service: web\n        version: v1\n    default:\n      action: Allow\n',
    )
    const files = new Map([
      ['r.yaml', yaml],
      ['zz.yaml', 'type: Mesh\nname: default\n'],
    ])
    const r = validateSnapshot({ revision: 't', files })
    expect(r.violations).toEqual([])
    expect(r.warnings.map((w) => `${w.path}: ${w.rule}: ${w.message}`)).toEqual([
      'spec.targetRef.kind: mtp.no-effect-at-egress: selects data planes, not ExternalServices: it has no effect at the zone egress',
      'spec.from[0].targetRef.tags: mtp.caller-tags: the zone egress knows callers by service only (spiffe://<mesh>/<service>): "version" cannot be checked, so this entry allows no caller there',
    ])
  })
})
