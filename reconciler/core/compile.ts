import {
  type AvailableService,
  DEFAULT_ZONE,
  type ExternalService,
  type Mesh,
  type MeshTrafficPermission,
} from '../../schemas/resources.js'
import {
  RouteKind,
  RouteMode,
  TABLE_API_VERSION,
  TABLE_KIND,
  type TableEgress,
  type TableMesh,
  type TableRoute,
  type ZoneTable,
} from '../../schemas/table.js'
import {
  bytewise,
  commonTags,
  type Endpoint,
  groupByService,
  ingressEndpoints,
  mtlsOn,
  type PreparedEs,
  type PreparedIngress,
  pinnedEsServices,
  prepareExternalService,
  prepareIngress,
  toUpstreams,
  zoneEgressOn,
  zoneOf,
} from './compile-inputs.js'
import { meshCaCertificates } from './mesh-ca.js'
import type { Resources } from './model.js'
import { computeRouteAccess } from './permissions.js'
import { defaultSniFormat, type SniFormat } from './sni.js'
import { canonicalRouteJson } from './table-json.js'
import { type Built, type SharedBuilt, SharedRoutes, type ZonePart } from './zone-assembly.js'

export { canonicalRouteJson, formatTableJson, orderTableKeys } from './table-json.js'

/**
 * The heart of zonegate: validated resources → one SNI routing table per zone, following Kuma 2.14's legacy
 * ZoneEgress (kuma-model.md §5, docs/design.md §2). Details and decisions: docs/compile.md.
 */

export interface CompileOptions {
  /** The zone of a ZoneEgress/ZoneIngress without `zone` (default `default`). */
  defaultZone?: string
  /** The SNI format (default: the legacy tag SNI). */
  sniFormat?: SniFormat
  /**
   * PEM certificates of the enabled CA of meshes with a `builtin` backend, by mesh name: the reconciler creates
   * those CAs (KV `zonegate-ca`) and passes their public certificates in. A builtin mesh missing here gets no
   * `meshes` entry (offline `zonegate compile`). Provided CAs are read from the resources themselves.
   */
  builtinCaCerts?: ReadonlyMap<string, readonly string[]>
}

/** Per mesh with mTLS: its ExternalServices split into unpinned (shared by every zone) and pinned per zone. */
class MeshPlan {
  readonly unpinned: Map<string, PreparedEs[]>
  readonly pinned = new Map<string, Map<string, PreparedEs[]>>()
  private readonly crossZone = new Map<string, Built>()
  /** The `meshes` entry of tables with external routes of this mesh (undefined: CA certificates unknown). */
  readonly tableMesh: TableMesh | undefined

  constructor(
    readonly mesh: Mesh,
    externalServices: PreparedEs[],
    private readonly format: SniFormat,
    private readonly permissions: readonly MeshTrafficPermission[],
    caCerts: readonly string[] | undefined,
  ) {
    this.tableMesh = caCerts && caCerts.length > 0 ? { name: mesh.name, caCerts: [...caCerts] } : undefined
    this.unpinned = groupByService(externalServices.filter((e) => e.pinned === undefined))
    const byZone = new Map<string, PreparedEs[]>()
    for (const es of externalServices) {
      if (es.pinned === undefined) continue
      const l = byZone.get(es.pinned)
      if (l) l.push(es)
      else byZone.set(es.pinned, [es])
    }
    for (const [zone, l] of byZone) this.pinned.set(zone, groupByService(l))
  }

  /** A route; external ones (`list` = their ExternalServices) carry who may use them (MeshTrafficPermissions). */
  build(service: string, kind: RouteKind, endpoints: Endpoint[], list?: PreparedEs[]): Built {
    const external = kind === RouteKind.External
    const route: TableRoute = {
      sni: this.format.build({ mesh: this.mesh.name, service }),
      mesh: this.mesh.name,
      service,
      kind,
      mode: external ? RouteMode.TerminateMtls : RouteMode.Passthrough,
      upstreams: toUpstreams(endpoints),
    }
    if (external) {
      const access = computeRouteAccess(this.mesh.name, service, commonTags(list ?? []), this.permissions)
      route.allow = access.allow
      if (access.deny.length > 0) route.deny = access.deny
    }
    return { route, commaJson: `,${canonicalRouteJson(route)}` }
  }

  /** External routes of services reached only through unpinned ExternalServices: the same in every zone (frozen). */
  shared(): SharedBuilt[] {
    const out: SharedBuilt[] = []
    for (const [service, list] of this.unpinned) {
      const b = this.build(
        service,
        RouteKind.External,
        list.map((e) => e.endpoint),
        list,
      )
      deepFreeze(b.route)
      out.push({ route: b.route, commaJson: b.commaJson, plan: this, service })
    }
    return out
  }

  /**
   * This mesh in zone Z: cross-zone routes (first endpoint from a remote ingress) and external routes that
   * involve ExternalServices pinned to Z; `excluded` = the shared services those replace or drop.
   */
  zonePart(zone: string, ingresses: PreparedIngress[]): ZonePart {
    const specific: Built[] = []
    const excluded = new Set<string>()
    // MeshServices mode Exclusive: ingresses stop advertising legacy services (pkg/zone/available_services.go).
    const exclusive = this.mesh.meshServices?.mode === 'Exclusive'
    const fromIngress = exclusive ? new Map<string, Endpoint[]>() : ingressEndpoints(zone, this.mesh.name, ingresses)
    // localityAwareLoadBalancing: remote endpoints whose service has a zone tag get priority 1 (GetLocality).
    const lalb = this.mesh.routing?.localityAwareLoadBalancing === true
    const pinnedHere = this.pinned.get(zone)
    // Step 2: ExternalServices reachable from Z, in name order (unpinned and pinned-here interleaved).
    const reachable = (service: string): PreparedEs[] => {
      const a = this.unpinned.get(service) ?? []
      const b = pinnedHere?.get(service)
      return b ? [...a, ...b].sort((x, y) => bytewise(x.name, y.name)) : a
    }
    for (const [service, eps] of fromIngress) {
      if (this.unpinned.has(service)) excluded.add(service)
      // First endpoint from an ingress: cross-zone (zoneEgress only, else no route), with every endpoint.
      if (!zoneEgressOn(this.mesh)) continue
      const remote = lalb ? eps.map((e) => (e.zoneTagged ? { ...e, priority: 1 } : e)) : eps
      const all = [...remote, ...reachable(service).map((e) => e.endpoint)]
      // Most zones see the same remote endpoints for a service: reuse the route built for the first of them.
      let key = service
      for (const e of all) key += `\0${e.address}\0${e.port}\0${e.weight}\0${e.zone ?? ''}\0${e.priority ?? 0}`
      let b = this.crossZone.get(key)
      if (!b) {
        b = this.build(service, RouteKind.CrossZone, all)
        deepFreeze(b.route)
        this.crossZone.set(key, b)
      }
      specific.push(b)
    }
    if (pinnedHere)
      for (const service of pinnedHere.keys()) {
        if (fromIngress.has(service)) continue
        if (this.unpinned.has(service)) excluded.add(service)
        const list = reachable(service)
        specific.push(
          this.build(
            service,
            RouteKind.External,
            list.map((e) => e.endpoint),
            list,
          ),
        )
      }
    return { specific, excluded }
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

/**
 * Compiles one routing table per zone that has at least one ZoneEgress (a zone without one gets no table).
 *
 * Input: validated resources (any order; duplicates already rejected). Output: a Map keyed by zone, inserted in
 * bytewise zone order, each value the envelope of docs/design.md §3 without generation, revision and signature:
 * `egresses` (that zone's ZoneEgresses by name: name, address if set, port, adminPort if set and non-zero) and
 * `routes` sorted by SNI, with `digest` equal to tableDigest. For every Mesh with mTLS, per service of Kuma's
 * egress endpoint map (step 1 remote ingresses, step 2 reachable ExternalServices):
 * - first endpoint from an ExternalService → `external` route, mode `terminate-mtls`, one upstream per
 *   reachable ExternalService (`kuma.io/zone` absent or this zone), weight 1, each with its own `tls` when that
 *   ExternalService has `tls.enabled` (prepareExternalService), and `allow`/`deny` from the mesh's
 *   MeshTrafficPermissions (permissions.ts). Generated whether or not the mesh routes through zone egress.
 * - `meshes`: each mesh with external routes in the zone whose CA certificates are known (provided: from its data
 *   source; builtin: `opts.builtinCaCerts`), sorted by name; absent when empty. It is part of the digest.
 * - first endpoint from a remote ingress → `cross-zone` route, mode `passthrough`, only when the mesh has
 *   `routing.zoneEgress: true`; upstream = advertised pair, weight = `instances` (0 or absent → 1), `zone` = the
 *   ingress's zone. ExternalServices pinned to another zone reach here through that zone's ingresses.
 * Upstreams with the same address, port and zone merge (weights summed) and are sorted by address, port, zone.
 * Routes identical in every zone are shared (frozen) objects: treat tables as immutable.
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

  // Ingresses and egresses route on SNI under mesh mTLS only: meshes without it contribute nothing.
  const mtpByMesh = new Map<string, MeshTrafficPermission[]>()
  for (const { resource: p } of resources.meshTrafficPermissions ?? []) {
    const list = mtpByMesh.get(p.mesh)
    if (list) list.push(p)
    else mtpByMesh.set(p.mesh, [p])
  }
  const plans = meshes.filter(mtlsOn).map((m) => {
    const prepared = (esByMesh.get(m.name) ?? []).map((es) => prepareExternalService(es, resources.files))
    return new MeshPlan(
      m,
      prepared.filter((e): e is PreparedEs => e !== undefined),
      format,
      mtpByMesh.get(m.name) ?? [],
      meshCaCertificates(m, resources.files, opts.builtinCaCerts),
    )
  })
  const tableMeshOf = new Map(plans.map((p) => [p.mesh.name, p.tableMesh]))

  // Shared routes of every mesh, sorted by SNI once; each zone merges its own (few) routes into this list.
  const shared = new SharedRoutes(plans.flatMap((p) => p.shared()))

  const tables = new Map<string, ZoneTable>()
  for (const zone of [...egressesByZone.keys()].sort(bytewise)) {
    const egresses = (egressesByZone.get(zone) as TableEgress[]).sort((a, b) => bytewise(a.name, b.name))
    const { routes, digest, meshes } = shared.assemble(
      zone,
      egresses,
      plans.map((p) => [p, p.zonePart(zone, ingresses)]),
      (routes) => tableMeshes(routes, tableMeshOf),
    )
    const table: ZoneTable = { apiVersion: TABLE_API_VERSION, kind: TABLE_KIND, zone, digest, egresses, routes }
    if (meshes) table.meshes = meshes
    tables.set(zone, table)
  }
  return tables
}

/** The `meshes` of a zone: meshes with terminate-mtls routes whose CA certificates are known, by name. Pure. */
function tableMeshes(
  routes: readonly TableRoute[],
  tableMeshOf: ReadonlyMap<string, TableMesh | undefined>,
): TableMesh[] | undefined {
  const names = new Set<string>()
  for (const r of routes) if (r.mode === RouteMode.TerminateMtls) names.add(r.mesh)
  const out: TableMesh[] = []
  for (const name of [...names].sort(bytewise)) {
    const m = tableMeshOf.get(name)
    if (m) out.push(m)
  }
  return out.length > 0 ? out : undefined
}
