import {
  type ExternalService,
  Kind,
  PROTOCOL_TAG,
  SERVICE_TAG,
  type ZoneEgress,
  type ZoneIngress,
} from '../../../schemas/resources.js'
import { type DataFiles, hasPemBlock, resolveDataSource } from '../data-source.js'
import { meshRules } from './mesh-rules.js'
import { isDNSName, isIP, overlapsLoopback, parseUint32, splitHostPort } from './net.js'
import { meshTrafficPermissionRules } from './permission-rules.js'
import { type Emit, isEmptyDataSource, tagRules } from './tags.js'

export type { Emit } from './tags.js'

/**
 * Kuma's per-resource rules (docs/validation.md) with Kuma's paths and messages (and the
 * two normalisations of §9). They run on documents whose types passed the JSON Schema. Pure.
 */

export const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
export const MESH_RE = /^[0-9a-z-_.]*$/
/**
 * A zone name is an RFC 1123 subdomain of at most 253 characters, as Kuma names its resources (dotted names such
 * as `eu.west-1` are valid). Where it becomes a NATS subject token or KV key it is encoded (schemas/subjects.ts
 * `zoneToken`, decision 014).
 */
export const ZONE_RE = NAME_RE
export const isZoneName = (s: string): boolean => s.length <= 253 && ZONE_RE.test(s)

const NAME_CHARS =
  'invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, ' +
  "'-' or '.', and must start and end with an alphanumeric character"
const MESH_CHARS =
  "invalid characters. Valid characters are numbers, lowercase latin letters and '-', '_', '.' symbols."
export const ZONE_CHARS =
  "invalid zone name. A zone name must be a lowercase RFC 1123 subdomain: at most 253 lower case alphanumeric characters, '-' or '.', " +
  'starting and ending with an alphanumeric character'

/** Meta checks (§3.0) on `name`, `mesh` (mesh-scoped kinds) and `zone` (zone proxies). */
export function metaRules(kind: Kind, value: Record<string, unknown>, emit: Emit): void {
  const name = typeof value.name === 'string' ? value.name : ''
  if (name === '') emit('meta.name-empty', 'name', 'cannot be empty')
  else {
    // One violation per field, as Kuma reports: the length, else the characters.
    if (name.length > 253) emit('meta.name-too-long', 'name', 'value length must less or equal 253')
    else if (!NAME_RE.test(name)) emit('meta.name-invalid', 'name', NAME_CHARS)
  }
  if (kind === Kind.ExternalService || kind === Kind.MeshTrafficPermission) {
    const mesh = typeof value.mesh === 'string' ? value.mesh : ''
    if (mesh === '') emit('meta.mesh-empty', 'mesh', 'cannot be empty')
    else if (mesh.length > 253) emit('meta.mesh-too-long', 'mesh', 'value length must less or equal 253')
    else if (!MESH_RE.test(mesh)) emit('meta.mesh-invalid', 'mesh', MESH_CHARS)
  }
  if ((kind === Kind.ZoneEgress || kind === Kind.ZoneIngress) && typeof value.zone === 'string' && value.zone !== '')
    if (!isZoneName(value.zone)) emit('meta.zone-invalid', 'zone', ZONE_CHARS)
}

/** What rules may read besides the resource: the snapshot's data files (for `file` data sources). */
export interface RuleContext {
  files?: DataFiles
}

/** Runs the Kuma rules of one resource of a known kind. */
export function resourceRules(kind: Kind, value: Record<string, unknown>, emit: Emit, ctx: RuleContext = {}): void {
  metaRules(kind, value, emit)
  if (kind === Kind.Mesh) meshRules(value as never, emit, ctx.files)
  else if (kind === Kind.ZoneEgress) zoneEgressRules(value as unknown as ZoneEgress, emit)
  else if (kind === Kind.ZoneIngress) zoneIngressRules(value as unknown as ZoneIngress, emit)
  else if (kind === Kind.MeshTrafficPermission) meshTrafficPermissionRules(value as never, emit)
  else externalServiceRules(value as unknown as ExternalService, emit, ctx.files)
}

const PORT_RANGE = 'port must be in the range [1, 65535]'
const validPort = (p: number | undefined) => p !== undefined && p >= 1 && p <= 65535

/** validateAddress of Kuma's dataplane validator, reported at `path` (not `path.address`, §9). */
function addressRules(path: string, address: string, emit: Emit): void {
  if (address === '0.0.0.0' || address === '::') emit('address.unspecified', path, 'must not be 0.0.0.0 or ::')
  if (!isIP(address) && !isDNSName(address))
    emit('address.invalid', path, 'address has to be valid IP address or domain name')
}

/** §3.2 */
export function zoneEgressRules(ze: ZoneEgress, emit: Emit): void {
  const net = ze.networking ?? ({} as Partial<ZoneEgress['networking']>)
  if (net.admin && net.admin.port === (net.port ?? 0) && overlapsLoopback(net.address))
    emit('zone-egress.admin-port', 'networking.admin.port', 'must differ from port')
  if (net.address) addressRules('networking.address', net.address, emit)
  if (!validPort(net.port)) emit('port.range', 'networking.port', PORT_RANGE)
}

/** §3.3 */
export function zoneIngressRules(zi: ZoneIngress, emit: Emit): void {
  const net = zi.networking ?? ({} as Partial<ZoneIngress['networking']>)
  const adminPort = net.admin ? (net.admin.port ?? 0) : undefined
  if (
    adminPort !== undefined &&
    ((adminPort === (net.port ?? 0) && overlapsLoopback(net.address)) ||
      (adminPort === (net.advertisedPort ?? 0) && overlapsLoopback(net.advertisedAddress)))
  )
    emit('zone-ingress.admin-port', 'networking.admin.port', 'must differ from port')
  const advPort = net.advertisedPort ?? 0
  if (!net.advertisedAddress && advPort !== 0)
    emit('zone-ingress.advertised-pair', 'networking.advertisedAddress', 'has to be defined with advertisedPort')
  if (net.advertisedAddress) {
    if (advPort === 0)
      emit('zone-ingress.advertised-pair', 'networking.advertisedPort', 'has to be defined with advertisedAddress')
    addressRules('networking.advertisedAddress', net.advertisedAddress, emit)
  }
  if (net.address) addressRules('networking.address', net.address, emit)
  if (!validPort(net.port)) emit('port.range', 'networking.port', PORT_RANGE)
  if (advPort !== 0 && !validPort(advPort)) emit('port.range', 'networking.advertisedPort', PORT_RANGE)
  ;(zi.availableServices ?? []).forEach((svc, i) => {
    tagRules(`availableServices[${i}].tags`, svc.tags ?? {}, emit, { requireService: true })
  })
}

const PROTOCOLS = new Set(['tcp', 'http', 'http2', 'grpc', 'kafka', 'tls', 'mysql'])

/** §3.4 */
export function externalServiceRules(es: ExternalService, emit: Emit, files?: DataFiles): void {
  const net = es.networking
  let host: string | undefined
  if (!net) emit('external-service.networking', 'networking', 'should have networking')
  else if (!net.address) emit('external-service.address', 'networking.address', "address can't be empty")
  else {
    const hp = splitHostPort(net.address)
    host = hp?.host ?? ''
    if (!hp) emit('external-service.address', 'networking.address', 'unable to parse address')
    if (!isIP(host) && !isDNSName(host))
      emit('external-service.address', 'networking.address', 'address has to be a valid IP address or a domain name')
    const port = parseUint32(hp?.port ?? '')
    if (port === undefined) emit('external-service.address', 'networking.address', 'unable to parse port in address')
    if (!validPort(port)) emit('port.range', 'networking.address', PORT_RANGE)
  }
  const tls = net?.tls
  if (tls?.serverName === '') emit('external-service.tls', 'networking.tls.serverName', 'cannot be empty')
  for (const field of ['caCert', 'clientCert', 'clientKey'] as const) {
    const ds = tls?.[field]
    const at = `networking.tls.${field}`
    if (!ds) continue
    if (isEmptyDataSource(ds)) {
      emit('external-service.tls', at, 'data source cannot be empty')
      continue
    }
    // zonegate resolves the data at compile time (the egress originates TLS with it): it must be readable PEM.
    const r = resolveDataSource(ds, files)
    if ('problems' in r)
      for (const p of r.problems) emit('external-service.tls-data', p.path ? `${at}.${p.path}` : at, p.message)
    else if (!hasPemBlock(r.value, field === 'clientKey' ? 'PRIVATE KEY' : 'CERTIFICATE'))
      emit(
        'external-service.tls-data',
        at,
        field === 'clientKey' ? 'must hold a PEM private key' : 'must hold PEM certificates',
      )
  }
  const tags = es.tags ?? {}
  tagRules('tags', tags, emit, { requireService: true })
  const protocol = tags[PROTOCOL_TAG]
  if (protocol !== undefined && !PROTOCOLS.has(protocol.toLowerCase()))
    emit(
      'tags.protocol',
      'tags["kuma.io/protocol"]',
      `tag "kuma.io/protocol" has an invalid value "${protocol}". Allowed values: grpc, http, http2, kafka, tcp`,
    )
  if (host !== undefined && host !== '' && tags[SERVICE_TAG] === host)
    emit('external-service.service-is-address', 'tags["kuma.io/service"]', 'cannot be the same as networking.address')
}
