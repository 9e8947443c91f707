import { RE2JS } from 're2js'
import type { DataSource, Mesh, MetricsBackend } from '../../../schemas/resources.js'
import { type DataFiles, resolveDataSource } from '../data-source.js'
import { checkCaKeyPair } from '../pki/ca.js'
import { isDialString, isDNSName, parseRequestURI, urlPort } from './net.js'
import { type Emit, tagRules } from './tags.js'

/**
 * Kuma's Mesh rules (docs/kuma-model.md, docs/validation.md) with Kuma's paths and messages.
 * Installed CA plugins are `builtin` and `provided` (Kuma's own). Provided certificates are read from their data
 * sources (inline, inlineString, or a file of the snapshot: `files`) and checked as Kuma checks them. Pure.
 */

/** CA backend types with an installed plugin. */
export const INSTALLED_CA_TYPES: ReadonlySet<string> = new Set(['builtin', 'provided'])

const DURATION = /^(0|\d+(y|w|d|h|ms|m|s))$/
const USED = (n: string) => `"${n}" name is already used for another backend`

type Conf = Record<string, unknown>
const rec = (x: unknown): Conf => (x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Conf) : {})
const str = (x: unknown): string => (typeof x === 'string' ? x : '')

export function meshRules(mesh: Mesh, emit: Emit, files?: DataFiles): void {
  const n = (mesh.name ?? '').length
  // Kuma's meta check fails first on a name over 253 characters, so the mesh manager's 63 is not reported too.
  if (n > 63 && n <= 253) emit('mesh.name-too-long', 'name', 'cannot be longer than 63 characters')
  mtlsRules(mesh, emit, files)
  loggingRules(mesh, emit)
  tracingRules(mesh, emit)
  metricsRules(mesh, emit)
  const proxy = mesh.constraints?.dataplaneProxy
  for (const list of ['requirements', 'restrictions'] as const)
    (proxy?.[list] ?? []).forEach((sel, i) => {
      tagRules(`constraints.dataplaneProxy.${list}[${i}].tags`, sel.tags ?? {}, emit, { selector: true })
    })
  if (mesh.routing?.zoneEgress === true && !mesh.mtls?.enabledBackend)
    emit(
      'mesh.zone-egress-requires-mtls',
      'mtls',
      'has to be set when zoneEgress enabled',
      mesh.mtls ? 'mtls' : 'routing.zoneEgress',
    )
}

function mtlsRules(mesh: Mesh, emit: Emit, files: DataFiles | undefined): void {
  const mtls = mesh.mtls
  if (!mtls) return
  const backends = mtls.backends ?? []
  const used = new Set<string>()
  backends.forEach((b, i) => {
    const name = b.name ?? ''
    if (used.has(name)) emit('mesh.mtls-backend-name', `mtls.backends[${i}].name`, USED(name))
    used.add(name)
    if (b.dpCert !== undefined && !DURATION.test(b.dpCert?.rotation?.expiration ?? ''))
      emit(
        'mesh.mtls-dpcert-expiration',
        'mtls.dpcert.rotation.expiration',
        'has to be a valid format',
        `mtls.backends[${i}].dpCert.rotation.expiration`,
      )
  })
  if (mtls.enabledBackend && !used.has(mtls.enabledBackend))
    emit('mesh.mtls-enabled-backend', 'mtls.enabledBackend', 'has to be set to one of the backends in the mesh')
  if (backends.length > 1) emit('mesh.mtls-backends-max', 'mtls.backends', 'cannot have more than 1 backends')
  // Mesh manager checks (rules 7-9): plugin lookup stops at the first unknown type.
  for (let i = 0; i < backends.length; i++) {
    const b = backends[i]!
    const path = `mtls.backends[${i}]`
    if (!INSTALLED_CA_TYPES.has(b.type ?? '')) {
      emit('mesh.mtls-backend-type', `${path}.type`, 'could not find installed plugin for this type')
      return
    }
    if (mtls.skipValidation) continue
    if (b.type === 'builtin') {
      // Kuma (builtin CA manager): the secret `<mesh>.ca-builtin-cert-<backend>` must be a DNS name in govalidator's
      // sense (labels of [A-Za-z0-9_-] up to 63 characters), the backend name quoted in the message.
      const secret = `${mesh.name}.ca-builtin-cert-${b.name ?? ''}`
      if (secret.length > 255)
        emit(
          'mesh.mtls-builtin-name',
          `${path}.conf.mtls.backends.name`,
          'Backend name is too long. Max length: 255',
          `${path}.name`,
        )
      else if (!isDNSName(secret))
        emit(
          'mesh.mtls-builtin-name',
          `${path}.conf.mtls.backends.name`,
          `"${b.name ?? ''}" name must be valid dns name`,
          `${path}.name`,
        )
      builtinConfRules(`${path}.conf.caCert`, rec(rec(b.conf).caCert), emit)
    } else providedRules(path, rec(b.conf), emit, files)
  }
}

/** Bounds of `conf.caCert.RSAbits` for builtin CAs the reconciler creates (a huge key would stall every pass). */
export const RSA_BITS = { min: 1024, max: 8192 } as const

/**
 * builtin `conf.caCert`: `expiration` must be a Kuma duration (Kuma's builtin plugin: `has to be a valid format`);
 * `RSAbits` (zonegate bound) between RSA_BITS.min and RSA_BITS.max, as a number or a numeric string (protojson).
 */
function builtinConfRules(path: string, caCert: Conf, emit: Emit): void {
  const exp = caCert.expiration
  if (exp !== undefined && (typeof exp !== 'string' || !DURATION.test(exp)))
    emit('mesh.mtls-builtin-conf', `${path}.expiration`, 'has to be a valid format')
  const bits = caCert.RSAbits
  if (bits === undefined || bits === null) return
  const n = typeof bits === 'number' ? bits : typeof bits === 'string' && /^\d+$/.test(bits) ? Number(bits) : Number.NaN
  if (!(Number.isInteger(n) && n >= RSA_BITS.min && n <= RSA_BITS.max))
    emit(
      'mesh.mtls-builtin-conf',
      `${path}.RSAbits`,
      `must be a number of bits from ${RSA_BITS.min} to ${RSA_BITS.max} (zonegate creates the key in the reconciler)`,
    )
}

/**
 * Kuma's provided CA plugin: `conf.cert` and `conf.key` are data sources (ValidateSource messages), then the pair
 * must load (`not a valid TLS key pair: …`) and be a CA (ValidateCaCert). Key-pair problems are reported at
 * `conf.cert`, as Kuma does.
 */
function providedRules(path: string, conf: Conf, emit: Emit, files: DataFiles | undefined): void {
  const values: Partial<Record<'cert' | 'key', string>> = {}
  for (const field of ['cert', 'key'] as const) {
    const ds = conf[field]
    const at = `${path}.conf.${field}`
    if (ds === undefined || ds === null) {
      emit('mesh.mtls-provided-conf', at, 'has to be defined')
      continue
    }
    const r = resolveDataSource(rec(ds) as DataSource, files)
    if ('value' in r) values[field] = r.value
    else for (const p of r.problems) emit('mesh.mtls-provided-conf', p.path ? `${at}.${p.path}` : at, p.message)
  }
  if (values.cert === undefined || values.key === undefined) return
  for (const message of checkCaKeyPair(values.cert, values.key))
    emit('mesh.mtls-provided-ca', `${path}.conf.cert`, message)
}

function loggingRules(mesh: Mesh, emit: Emit): void {
  const logging = mesh.logging
  if (!logging) return
  const used = new Set<string>()
  ;(logging.backends ?? []).forEach((b, i) => {
    const path = `logging.backends[${i}]`
    const name = b.name ?? ''
    if (name === '') emit('mesh.logging-backend', `${path}.name`, 'cannot be empty')
    const conf = rec(b.conf)
    if (b.type === 'tcp') {
      const address = str(conf.address)
      if (address === '')
        emit('mesh.logging-backend', `${path}.config.address`, 'cannot be empty', `${path}.conf.address`)
      else if (!isDialString(address))
        emit(
          'mesh.logging-backend',
          `${path}.config.address`,
          'has to be in format of HOST:PORT',
          `${path}.conf.address`,
        )
    } else if (b.type === 'file') {
      if (str(conf.path) === '')
        emit('mesh.logging-backend', `${path}.config.path`, 'cannot be empty', `${path}.conf.path`)
    } else emit('mesh.logging-backend', `${path}.type`, 'unknown backend type. Available backends: "tcp", "file"')
    if (used.has(name)) emit('mesh.logging-backend', `${path}.name`, USED(name))
    used.add(name)
  })
  if (logging.defaultBackend && !used.has(logging.defaultBackend))
    emit('mesh.logging-default', 'logging.defaultBackend', 'has to be set to one of the logging backend in mesh')
}

const API_VERSIONS = new Set(['httpJsonV1', 'httpJson', 'httpProto'])

function tracingRules(mesh: Mesh, emit: Emit): void {
  const tracing = mesh.tracing
  if (!tracing) return
  const used = new Set<string>()
  ;(tracing.backends ?? []).forEach((b, i) => {
    const path = `tracing.backends[${i}]`
    const name = b.name ?? ''
    if (name === '') emit('mesh.tracing-backend', `${path}.name`, 'cannot be empty')
    if (b.sampling !== undefined && (b.sampling < 0 || b.sampling > 100))
      emit('mesh.tracing-backend', `${path}.sampling`, 'has to be in [0.0 - 100.0] range')
    const conf = rec(b.conf)
    if (b.type === 'zipkin') {
      zipkinRules(path, b.conf, emit)
    } else if (b.type === 'datadog') {
      if (str(conf.address) === '')
        emit('mesh.tracing-backend', `${path}.config.address`, 'cannot be empty', `${path}.conf.address`)
      const port = typeof conf.port === 'number' ? conf.port : 0
      if (!(port >= 1 && port <= 65535))
        emit('mesh.tracing-backend', `${path}.config.port`, 'port must be in the range [1, 65535]', `${path}.conf.port`)
    } else emit('mesh.tracing-backend', `${path}.type`, 'unknown backend type. Available backends: "zipkin", "datadog"')
    if (used.has(name)) emit('mesh.tracing-backend', `${path}.name`, USED(name))
    used.add(name)
  })
  if (tracing.defaultBackend && !used.has(tracing.defaultBackend))
    emit('mesh.tracing-default', 'tracing.defaultBackend', 'has to be set to one of the tracing backend in mesh')
}

/** The typed fields of Kuma's ZipkinTracingBackendConfig (api/mesh/v1alpha1/tracing.proto) and their JSON kinds. */
const ZIPKIN_FIELDS: Record<string, 'string' | 'bool' | 'google.protobuf.BoolValue'> = {
  url: 'string',
  traceId128bit: 'bool',
  apiVersion: 'string',
  sharedSpanContext: 'google.protobuf.BoolValue',
}

/**
 * Kuma's validateZipkin (pkg/core/resources/apis/mesh/mesh_validator.go): the Struct `conf` is read into the typed
 * config first (proto.ToTyped; a field of the wrong JSON kind fails it, and nothing else is checked); then
 * apiVersion, then url: empty, not a request URI (Go's url.ParseRequestURI), or without an explicit port.
 * Unknown fields are ignored, `null` means not set.
 */
function zipkinRules(path: string, raw: unknown, emit: Emit): void {
  const conf = rec(raw)
  for (const [field, kind] of Object.entries(ZIPKIN_FIELDS)) {
    const v = conf[field]
    if (v === undefined || v === null) continue
    if (kind === 'string' ? typeof v === 'string' : typeof v === 'boolean') continue
    // protojson's own text carries a line:column and a randomised prefix; the rest is Kuma's wording
    emit(
      'mesh.tracing-backend',
      `${path}.config`,
      `could not parse config: invalid value for ${kind === 'google.protobuf.BoolValue' ? 'bool' : kind} field ${field}: ${JSON.stringify(v)}`,
      `${path}.conf.${field}`,
    )
    return
  }
  const apiVersion = str(conf.apiVersion)
  if (apiVersion !== '' && !API_VERSIONS.has(apiVersion))
    emit(
      'mesh.tracing-backend',
      `${path}.config.apiVersion`,
      'has invalid value. Allowed values: httpJsonV1, httpJson, httpProto',
      `${path}.conf.apiVersion`,
    )
  const url = str(conf.url)
  const at = `${path}.conf.url`
  if (url === '') {
    emit('mesh.tracing-backend', `${path}.config.url`, 'cannot be empty', at)
    return
  }
  const uri = parseRequestURI(url)
  if (uri === undefined) emit('mesh.tracing-backend', `${path}.config.url`, 'invalid URL', at)
  else if (urlPort(uri.host) === '')
    emit('mesh.tracing-backend', `${path}.config.url`, 'port has to be explicitly specified', at)
}

function metricsRules(mesh: Mesh, emit: Emit): void {
  const metrics = mesh.metrics
  if (!metrics) return
  const used = new Set<string>()
  ;(metrics.backends ?? []).forEach((b: MetricsBackend, i) => {
    const path = `metrics.backends[${i}]`
    const name = b.name ?? ''
    if (used.has(name)) emit('mesh.metrics-backend', `${path}.name`, USED(name))
    used.add(name)
    if (b.type !== 'prometheus')
      emit('mesh.metrics-backend', `${path}.type`, 'unknown backend type. Available backends: "prometheus"')
    else prometheusRules(`${path}.conf`, rec(b.conf), emit)
  })
  if (metrics.enabledBackend && !used.has(metrics.enabledBackend))
    emit('mesh.metrics-enabled-backend', 'metrics.enabledBackend', 'has to be set to one of the backends in the mesh')
}

function prometheusRules(path: string, conf: Conf, emit: Emit): void {
  if (typeof conf.skipMTLS === 'boolean' && conf.tls !== undefined) {
    const mode = str(rec(conf.tls).mode) || 'activeMTLSBackend'
    if ((conf.skipMTLS && mode !== 'disabled') || (!conf.skipMTLS && mode !== 'activeMTLSBackend'))
      emit('mesh.metrics-backend', path, 'skipMTLS and tls configuration cannot be defined together')
  }
  const filterRegex = rec(conf.envoy).filterRegex
  if (typeof filterRegex === 'string' && filterRegex !== '') {
    try {
      RE2JS.compile(filterRegex) // Kuma compiles it with Go's regexp (RE2 syntax), not JavaScript's
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err)
      emit('mesh.metrics-backend', `${path}.envoy.filterRegex`, `provided regexp isn't correct: ${why}`)
    }
  }
  const seen = new Set<string>()
  const aggregate = Array.isArray(conf.aggregate) ? conf.aggregate : []
  aggregate.forEach((agg, j) => {
    const name = str(rec(agg).name)
    if (seen.has(name))
      emit('mesh.metrics-backend', `${path}.aggregate[${j}].name`, `duplicate entry: ${name}, values have to be unique`)
    seen.add(name)
  })
}
