import type { AvailableService, ExternalService, Mesh, ZoneIngress } from '../../schemas/resources.js'
import { SERVICE_TAG, ZONE_TAG } from '../../schemas/resources.js'
import type { TableUpstream, UpstreamTls } from '../../schemas/table.js'
import { type DataFiles, dataSourceValue } from './data-source.js'
import { sniFromTags } from './sni.js'
import { isDNSName, splitHostPort } from './validate/net.js'

/**
 * The inputs of the compiler, prepared once per compile: ExternalService endpoints, ingresses with the
 * availableServices their zone's control plane would add for zone-pinned ExternalServices, and step 1 of Kuma's
 * egress endpoint map. Pure. See compile.ts and docs/compile.md.
 */

/** Envoy weights are uint32: merged weights are capped here. */
export const MAX_WEIGHT = 0xffffffff
/** Bytewise (UTF-16 code unit) order, as `Array.prototype.sort` and canonicalJson use. Pure. */
export const bytewise = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** One endpoint of Kuma's egress endpoint map (BuildEgressEndpointMap). */
export interface Endpoint {
  address: string
  port: number
  weight: number
  zone?: string
  /** From an ExternalService (step 2) rather than a remote ingress (step 1). */
  external: boolean
  /** TLS origination towards this endpoint (ExternalServices with `tls.enabled` only). */
  tls?: UpstreamTls
  /** The advertised service carries a `kuma.io/zone` tag (Kuma then gives the endpoint a locality). */
  zoneTagged?: boolean
  /** Kuma's locality priority: 1 for remote endpoints with a zone tag when the mesh balances locality-aware. */
  priority?: number
}

/** An ExternalService reduced to what routing needs. */
export interface PreparedEs {
  /** The resource name: Kuma lists ExternalServices by name. */
  name: string
  service: string
  pinned?: string
  tags: Record<string, string>
  endpoint: Endpoint
}

/** A ZoneIngress with its zone resolved, its advertised pair (if both fields are set) and effective services. */
export interface PreparedIngress {
  name: string
  zone: string
  pair?: { address: string; port: number; key: string }
  services: AvailableService[]
  /** False for an ingress without `zone`: Kuma never treats it as remote (`zone` non-empty and ≠ Z). */
  remote: boolean
  /** Step-1 endpoints of this ingress per mesh, built once (used when the ingress is remote and its pair unused). */
  byMesh: Map<string, { service: string; endpoint: Endpoint }[]>
}

/** A zone proxy's zone: its `zone`, or `defaultZone` when empty. Pure. */
export const zoneOf = (zone: string | undefined, defaultZone: string) => (zone ? zone : defaultZone)
/** Kuma's MTLSEnabled(): `mtls.enabledBackend` is non-empty. Pure. */
export const mtlsOn = (m: Mesh) => typeof m.mtls?.enabledBackend === 'string' && m.mtls.enabledBackend !== ''
/** `routing.zoneEgress: true`. Pure. */
export const zoneEgressOn = (m: Mesh) => m.routing?.zoneEgress === true

/**
 * Kuma's `ExternalService` endpoint: host:port, weight 1, and TLS origination from `networking.tls` (Kuma's
 * per-endpoint rules): none unless `tls.enabled`; `serverName` = `tls.serverName`, else the host when it is a DNS
 * name; `caCert`, and `clientCert` + `clientKey` only when both are given, as PEM read from their data sources
 * (`files` for `file` sources); `allowRenegotiation` and `skipHostnameVerification` when set. Pure.
 */
export function prepareExternalService(es: ExternalService, files?: DataFiles): PreparedEs | undefined {
  const hp = splitHostPort(es.networking.address)
  const port = hp ? Number(hp.port) : Number.NaN
  const service = es.tags[SERVICE_TAG]
  if (!hp || !Number.isInteger(port) || service === undefined) return undefined // cannot happen after validation
  const endpoint: Endpoint = { address: hp.host, port, weight: 1, external: true }
  const t = es.networking.tls
  if (t?.enabled === true) {
    const tls: UpstreamTls = { enabled: true }
    const serverName = t.serverName ? t.serverName : isDNSName(hp.host) ? hp.host : undefined
    if (serverName !== undefined) tls.serverName = serverName
    const caCert = t.caCert ? dataSourceValue(t.caCert, files) : undefined
    if (caCert !== undefined) tls.caCert = caCert
    const clientCert = t.clientCert ? dataSourceValue(t.clientCert, files) : undefined
    const clientKey = t.clientKey ? dataSourceValue(t.clientKey, files) : undefined
    if (clientCert !== undefined && clientKey !== undefined) {
      tls.clientCert = clientCert
      tls.clientKey = clientKey
    }
    if (t.allowRenegotiation !== undefined) tls.allowRenegotiation = t.allowRenegotiation
    if (t.skipHostnameVerification !== undefined) tls.skipHostnameVerification = t.skipHostnameVerification
    endpoint.tls = tls
  }
  const pinned = es.tags[ZONE_TAG]
  return { name: es.name, service, ...(pinned === undefined ? {} : { pinned }), tags: es.tags, endpoint }
}

/** The tags every ExternalService of a route carries with the same value (what a MeshSubset may select). Pure. */
export function commonTags(list: readonly PreparedEs[]): Record<string, string> {
  const first = list[0]
  if (!first) return {}
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(first.tags)) if (list.every((e) => e.tags[k] === v)) out[k] = v
  return out
}

/**
 * What a zone CP adds to its ingresses' `availableServices` for ExternalServices pinned to its zone
 * (`pkg/zone/available_services.go`: only when the mesh has zoneEgress on and MeshServices mode is not Exclusive):
 * one entry per (mesh, tag set), `instances` = how many ExternalServices carry that tag set.
 */
export function pinnedEsServices(
  zone: string,
  meshes: Mesh[],
  esByMesh: Map<string, ExternalService[]>,
): AvailableService[] {
  const out: AvailableService[] = []
  for (const mesh of meshes) {
    if (!zoneEgressOn(mesh) || mesh.meshServices?.mode === 'Exclusive') continue
    const counts = new Map<string, { tags: Record<string, string>; n: number }>()
    for (const es of esByMesh.get(mesh.name) ?? []) {
      if (es.tags[ZONE_TAG] !== zone) continue
      const key = sniFromTags(es.tags)
      const c = counts.get(key)
      if (c) c.n++
      else counts.set(key, { tags: es.tags, n: 1 })
    }
    for (const key of [...counts.keys()].sort(bytewise)) {
      const c = counts.get(key) as { tags: Record<string, string>; n: number }
      out.push({ tags: c.tags, instances: c.n, mesh: mesh.name, externalService: true })
    }
  }
  return out
}

/**
 * An ingress as the compiler sees it: declared availableServices plus the synthesized pinned-ExternalService
 * entries of its zone, minus those already declared with the same mesh and tag set. Pure.
 */
export function prepareIngress(zi: ZoneIngress, zone: string, synthesized: AvailableService[]): PreparedIngress {
  const remote = typeof zi.zone === 'string' && zi.zone !== ''
  const declared = zi.availableServices ?? []
  const seen = new Set(declared.map((s) => `${s.mesh ?? ''}\0${sniFromTags(s.tags)}`))
  const extra = synthesized.filter((s) => !seen.has(`${s.mesh}\0${sniFromTags(s.tags)}`))
  const { advertisedAddress: address, advertisedPort: port } = zi.networking
  const pair =
    address && port
      ? { address, port, key: address.includes(':') ? `[${address}]:${port}` : `${address}:${port}` }
      : undefined
  const services = [...declared, ...extra]
  const byMesh = new Map<string, { service: string; endpoint: Endpoint }[]>()
  if (pair)
    for (const s of services) {
      const service = s.tags[SERVICE_TAG]
      if (s.mesh === undefined || service === undefined) continue
      // Kuma leaves the Envoy weight unset for 0 instances, and Envoy's default weight is 1.
      const weight = s.instances && s.instances > 0 ? s.instances : 1
      const endpoint: Endpoint = { address: pair.address, port: pair.port, weight, zone, external: false }
      if (s.tags[ZONE_TAG] !== undefined) endpoint.zoneTagged = true
      const list = byMesh.get(s.mesh)
      if (list) list.push({ service, endpoint })
      else byMesh.set(s.mesh, [{ service, endpoint }])
    }
  return { name: zi.name, zone, ...(pair ? { pair } : {}), services, remote, byMesh }
}

/**
 * Endpoints → upstreams. Endpoints with the same address and port are one upstream: the first one's weight, zone,
 * TLS and priority (Envoy keeps the first of duplicate hosts in a cluster; kuma-model.md §5.2). Sorted by address,
 * port (Kuma's EDS order). `priority` only when non-zero (tables of meshes without locality-aware balancing keep
 * their digest).
 */
export function toUpstreams(endpoints: Endpoint[]): TableUpstream[] {
  const one = (e: Endpoint): TableUpstream => {
    const u: TableUpstream = { address: e.address, port: e.port, weight: e.weight }
    if (e.zone !== undefined) u.zone = e.zone
    if (e.tls !== undefined) u.tls = e.tls
    if (e.priority) u.priority = e.priority
    return u
  }
  if (endpoints.length === 1) return [one(endpoints[0] as Endpoint)] // the common case: nothing to merge or sort
  const merged = new Map<string, TableUpstream>()
  for (const e of endpoints) {
    const key = `${e.address}\0${e.port}`
    if (!merged.has(key)) merged.set(key, one(e))
  }
  return [...merged.values()].sort((a, b) => bytewise(a.address, b.address) || a.port - b.port)
}

/** Step 1 of Kuma's endpoint map (kuma-model.md §5.2): remote ingresses by name, an advertised pair used once
 * (it counts as used only when that ingress had non-empty availableServices). Service → endpoints. */
export function ingressEndpoints(zone: string, mesh: string, ingresses: PreparedIngress[]): Map<string, Endpoint[]> {
  const map = new Map<string, Endpoint[]>()
  const usedPairs = new Set<string>()
  for (const zi of ingresses) {
    if (!zi.remote || zi.zone === zone || !zi.pair || usedPairs.has(zi.pair.key)) continue
    if (zi.services.length > 0) usedPairs.add(zi.pair.key)
    for (const { service, endpoint } of zi.byMesh.get(mesh) ?? []) {
      const list = map.get(service)
      if (list) list.push(endpoint)
      else map.set(service, [endpoint])
    }
  }
  return map
}

/** ExternalServices grouped by service tag, each group in input (name) order. Pure. */
export const groupByService = (list: PreparedEs[]) => {
  const m = new Map<string, PreparedEs[]>()
  for (const es of list) {
    const g = m.get(es.service)
    if (g) g.push(es)
    else m.set(es.service, [es])
  }
  return m
}
