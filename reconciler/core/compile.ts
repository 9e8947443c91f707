import { tableDigest } from '../../schemas/digest.js'
import {
  type AvailableService,
  DEFAULT_ZONE,
  type ExternalService,
  type Mesh,
  SERVICE_TAG,
  ZONE_TAG,
  type ZoneIngress,
} from '../../schemas/resources.js'
import {
  RouteKind,
  RouteMode,
  type RouteTls,
  TABLE_API_VERSION,
  TABLE_KIND,
  type TableEgress,
  type TableRoute,
  type TableUpstream,
  type ZoneTable,
} from '../../schemas/table.js'
import type { Resources } from './model.js'
import { defaultSniFormat, type SniFormat, sniFromTags } from './sni.js'
import { isDNSName, splitHostPort } from './validate/net.js'

/**
 * The heart of zonegate: validated resources → one SNI routing table per zone, following Kuma 2.14's legacy
 * ZoneEgress (kuma-model.md §5, DESIGN.md §2). Details and decisions: docs/compile.md.
 */

export interface CompileOptions {
  /** The zone of a ZoneEgress/ZoneIngress without `zone` (default `default`). */
  defaultZone?: string
  /** The SNI format (default: the legacy tag SNI). */
  sniFormat?: SniFormat
}

const MAX_WEIGHT = 0xffffffff
const bytewise = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** One endpoint of Kuma's egress endpoint map (BuildEgressEndpointMap). */
interface Endpoint {
  address: string
  port: number
  weight: number
  zone?: string
  /** From an ExternalService (step 2) rather than a remote ingress (step 1). */
  external: boolean
  tls?: RouteTls
}

interface PreparedEs {
  name: string
  service: string
  pinned?: string
  endpoint: Endpoint
}

interface PreparedIngress {
  name: string
  zone: string
  pair?: { address: string; port: number; key: string }
  services: AvailableService[]
}

const zoneOf = (zone: string | undefined, defaultZone: string) => (zone ? zone : defaultZone)
const mtlsOn = (m: Mesh) => typeof m.mtls?.enabledBackend === 'string' && m.mtls.enabledBackend !== ''
const zoneEgressOn = (m: Mesh) => m.routing?.zoneEgress === true

/** Kuma's `ExternalService` endpoint: host:port, weight 1, TLS from `networking.tls`. */
function prepareExternalService(es: ExternalService): PreparedEs | undefined {
  const hp = splitHostPort(es.networking.address)
  const port = hp ? Number(hp.port) : Number.NaN
  const service = es.tags[SERVICE_TAG]
  if (!hp || !Number.isInteger(port) || service === undefined) return undefined // cannot happen after validation
  const t = es.networking.tls
  const enabled = t?.enabled === true
  // Kuma: serverName, else the host when it is a DNS name (never an IP). Only meaningful when TLS is originated.
  const serverName = !enabled ? undefined : t?.serverName ? t.serverName : isDNSName(hp.host) ? hp.host : undefined
  const tls: RouteTls = serverName === undefined ? { enabled } : { enabled, serverName }
  const pinned = es.tags[ZONE_TAG]
  return {
    name: es.name,
    service,
    ...(pinned === undefined ? {} : { pinned }),
    endpoint: { address: hp.host, port, weight: 1, external: true, tls },
  }
}

/**
 * What a zone CP adds to its ingresses' `availableServices` for ExternalServices pinned to its zone
 * (`pkg/zone/available_services.go`: only when the mesh has zoneEgress on and MeshServices mode is not Exclusive):
 * one entry per (mesh, tag set), `instances` = how many ExternalServices carry that tag set.
 */
function pinnedEsServices(zone: string, meshes: Mesh[], esByMesh: Map<string, ExternalService[]>): AvailableService[] {
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

function prepareIngress(zi: ZoneIngress, zone: string, synthesized: AvailableService[]): PreparedIngress {
  const declared = zi.availableServices ?? []
  const seen = new Set(declared.map((s) => `${s.mesh ?? ''}\0${sniFromTags(s.tags)}`))
  const extra = synthesized.filter((s) => !seen.has(`${s.mesh}\0${sniFromTags(s.tags)}`))
  const { advertisedAddress: address, advertisedPort: port } = zi.networking
  const pair =
    address && port
      ? { address, port, key: address.includes(':') ? `[${address}]:${port}` : `${address}:${port}` }
      : undefined
  return { name: zi.name, zone, ...(pair ? { pair } : {}), services: [...declared, ...extra] }
}

/** Same (address, port, zone) upstreams merge, weights summed; sorted by address, port, zone (Kuma's EDS order). */
function toUpstreams(endpoints: Endpoint[]): TableUpstream[] {
  const merged = new Map<string, TableUpstream>()
  for (const e of endpoints) {
    const key = `${e.address}\0${e.port}\0${e.zone ?? ''}`
    const u = merged.get(key)
    if (u) u.weight = Math.min(MAX_WEIGHT, u.weight + e.weight)
    else
      merged.set(key, {
        address: e.address,
        port: e.port,
        weight: e.weight,
        ...(e.zone === undefined ? {} : { zone: e.zone }),
      })
  }
  return [...merged.values()].sort(
    (a, b) => bytewise(a.address, b.address) || a.port - b.port || bytewise(a.zone ?? '', b.zone ?? ''),
  )
}

/**
 * Kuma's egress endpoint map for mesh M seen from zone Z (kuma-model.md §5.2), in build order: (1) remote
 * ingresses sorted by name, skipping an advertised pair already used by an earlier ingress with non-empty
 * availableServices; (2) ExternalServices of M reachable from Z, by name.
 */
function endpointMap(
  zone: string,
  mesh: string,
  ingresses: PreparedIngress[],
  externalServices: PreparedEs[],
): Map<string, Endpoint[]> {
  const map = new Map<string, Endpoint[]>()
  const add = (service: string, e: Endpoint) => {
    const list = map.get(service)
    if (list) list.push(e)
    else map.set(service, [e])
  }
  const usedPairs = new Set<string>()
  for (const zi of ingresses) {
    if (zi.zone === zone || !zi.pair || usedPairs.has(zi.pair.key)) continue
    if (zi.services.length > 0) usedPairs.add(zi.pair.key)
    for (const s of zi.services) {
      const service = s.tags[SERVICE_TAG]
      if (s.mesh !== mesh || service === undefined) continue
      // Kuma leaves the Envoy weight unset for 0 instances, and Envoy's default weight is 1.
      const weight = s.instances && s.instances > 0 ? s.instances : 1
      add(service, { address: zi.pair.address, port: zi.pair.port, weight, zone: zi.zone, external: false })
    }
  }
  for (const es of externalServices) if (es.pinned === undefined || es.pinned === zone) add(es.service, es.endpoint)
  return map
}

/**
 * Compiles one routing table per zone that has at least one ZoneEgress (a zone without one gets no table).
 *
 * Input: validated resources (any order; duplicates already rejected). Output: a Map keyed by zone, inserted in
 * bytewise zone order, each value the envelope of DESIGN.md §3 without generation, revision and signature:
 * `egresses` (that zone's ZoneEgresses by name: name, address if set, port, adminPort if set and non-zero) and
 * `routes` sorted by SNI, with `digest` = tableDigest. For every Mesh with mTLS, per service of its endpoint map:
 * - first endpoint from an ExternalService → `external` route, mode `terminate-mtls`, one upstream per
 *   reachable ExternalService (`kuma.io/zone` absent or this zone), weight 1, `tls` `{enabled, serverName}`
 *   (serverName: `networking.tls.serverName`, else the host when it is a DNS name; only when enabled). Generated
 *   whether or not the mesh routes through zone egress.
 * - first endpoint from a remote ingress → `cross-zone` route, mode `passthrough`, only when the mesh has
 *   `routing.zoneEgress: true`; upstream = advertised pair, weight = `instances` (0 or absent → 1), `zone` = the
 *   ingress's zone. ExternalServices pinned to another zone reach here through that zone's ingresses.
 * Upstreams with the same address, port and zone merge (weights summed) and are sorted by address, port, zone.
 * Equal inputs give byte-identical output whatever the order of files and documents. Pure.
 */
export function compileZoneTables(resources: Resources, opts: CompileOptions = {}): Map<string, ZoneTable> {
  const defaultZone = opts.defaultZone ?? DEFAULT_ZONE
  const format = opts.sniFormat ?? defaultSniFormat

  const egressesByZone = new Map<string, TableEgress[]>()
  for (const { resource: ze } of resources.zoneEgresses) {
    const zone = zoneOf(ze.zone, defaultZone)
    const e: TableEgress = { name: ze.name, port: ze.networking.port }
    if (ze.networking.address) e.address = ze.networking.address
    const admin = ze.networking.admin?.port
    if (admin) e.adminPort = admin
    const list = egressesByZone.get(zone)
    if (list) list.push(e)
    else egressesByZone.set(zone, [e])
  }

  const meshes = resources.meshes.map((m) => m.resource).sort((a, b) => bytewise(a.name, b.name))
  const esByMesh = new Map<string, ExternalService[]>()
  for (const { resource: es } of resources.externalServices) {
    const list = esByMesh.get(es.mesh)
    if (list) list.push(es)
    else esByMesh.set(es.mesh, [es])
  }
  for (const list of esByMesh.values()) list.sort((a, b) => bytewise(a.name, b.name))
  const preparedEs = new Map<string, PreparedEs[]>()
  for (const [mesh, list] of esByMesh)
    preparedEs.set(
      mesh,
      list.map(prepareExternalService).filter((e): e is PreparedEs => e !== undefined),
    )

  const synthesizedByZone = new Map<string, AvailableService[]>()
  const ingresses = resources.zoneIngresses
    .map(({ resource: zi }) => {
      const zone = zoneOf(zi.zone, defaultZone)
      let synthesized = synthesizedByZone.get(zone)
      if (!synthesized) {
        synthesized = pinnedEsServices(zone, meshes, esByMesh)
        synthesizedByZone.set(zone, synthesized)
      }
      return prepareIngress(zi, zone, synthesized)
    })
    .sort((a, b) => bytewise(a.name, b.name) || bytewise(a.zone, b.zone))

  const tables = new Map<string, ZoneTable>()
  for (const zone of [...egressesByZone.keys()].sort(bytewise)) {
    const egresses = (egressesByZone.get(zone) as TableEgress[]).sort((a, b) => bytewise(a.name, b.name))
    const routes: TableRoute[] = []
    for (const mesh of meshes) {
      if (!mtlsOn(mesh)) continue // ingresses and egresses route on SNI under mesh mTLS only
      const map = endpointMap(zone, mesh.name, ingresses, preparedEs.get(mesh.name) ?? [])
      for (const [service, endpoints] of map) {
        const first = endpoints[0] as Endpoint
        if (!first.external && !zoneEgressOn(mesh)) continue
        const route: TableRoute = {
          sni: format.build({ mesh: mesh.name, service }),
          mesh: mesh.name,
          service,
          kind: first.external ? RouteKind.External : RouteKind.CrossZone,
          mode: first.external ? RouteMode.TerminateMtls : RouteMode.Passthrough,
          upstreams: toUpstreams(endpoints),
        }
        // One tls per route (wire contract): the first ExternalService's, by name. See docs/compile.md.
        if (first.external) route.tls = first.tls as RouteTls
        routes.push(route)
      }
    }
    routes.sort((a, b) => bytewise(a.sni, b.sni))
    const body = { zone, egresses, routes }
    tables.set(zone, {
      apiVersion: TABLE_API_VERSION,
      kind: TABLE_KIND,
      zone,
      digest: tableDigest(body),
      egresses,
      routes,
    })
  }
  return tables
}

/**
 * The envelope as `zonegate compile --output json` prints it: keys in envelope order (apiVersion, kind, zone,
 * generation, revision, digest, egresses, routes, signature), 2-space indent, trailing newline. Pure.
 */
export function formatTableJson(table: ZoneTable): string {
  const ordered = {
    apiVersion: table.apiVersion,
    kind: table.kind,
    zone: table.zone,
    generation: table.generation,
    revision: table.revision,
    digest: table.digest,
    egresses: table.egresses.map((e) => ({ name: e.name, address: e.address, port: e.port, adminPort: e.adminPort })),
    routes: table.routes.map((r) => ({
      sni: r.sni,
      mesh: r.mesh,
      service: r.service,
      kind: r.kind,
      mode: r.mode,
      upstreams: r.upstreams.map((u) => ({ address: u.address, port: u.port, weight: u.weight, zone: u.zone })),
      tls: r.tls === undefined ? undefined : { enabled: r.tls.enabled, serverName: r.tls.serverName },
    })),
    signature: table.signature,
  }
  return `${JSON.stringify(ordered, null, 2)}\n`
}
