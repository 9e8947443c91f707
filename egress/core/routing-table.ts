import { tableCanonicalParts, tableDigest } from '../../schemas/digest.js'
import { verifyTableSignature } from '../../schemas/signing.js'
import {
  RouteMode,
  type TableRoute,
  type TableUpstream,
  type UpstreamTls,
  type ZoneTable,
} from '../../schemas/table.js'
import { validateZoneTableShape } from '../../schemas/zone-table-shape.js'
import { type CompactRoutes, CompactZoneTable, findRoute, routeAt, sniAt } from './compact-table.js'
import { allowMatcher } from './mesh-mtls.js'

/**
 * The egress's routing table: an immutable view of one ZoneTable envelope (docs/design.md §3), built once per
 * received table. The proxy reads the current table once per new connection; a swap replaces the reference.
 * The only mutable state inside is each route's weighted round-robin position, which belongs to this table
 * instance (a new table starts its balancers afresh). Pure: no I/O, no clocks.
 */

/** One upstream of a route, ready to dial. */
export interface Upstream {
  readonly address: string
  readonly port: number
  readonly weight: number
  /** Kuma's locality priority (0 = preferred); traffic goes only to the lowest priority with an upstream left. */
  readonly priority: number
  /** `address:port`, for logs and metrics. */
  readonly key: string
  /** TLS origination towards this upstream (terminate-mtls routes); absent or disabled: plain TCP. */
  readonly tls?: UpstreamTls
}

/** One route: an SNI and its upstreams, with a smooth weighted round robin over them. */
export class Route {
  readonly sni: string
  readonly mode: RouteMode
  readonly mesh: string
  /** True for `terminate-mtls` routes: the egress terminates the caller's mesh mTLS. */
  readonly terminate: boolean
  /** Whether the caller service may use this route (terminate-mtls routes; the route's `allow`). */
  readonly allows: (service: string) => boolean
  readonly upstreams: readonly Upstream[]
  private readonly weights: number[]
  private readonly current: number[]
  /** Some upstream has a priority above 0 (only then does pick() look at priorities). */
  private readonly tiered: boolean

  constructor(route: TableRoute) {
    this.sni = lowerAscii(route.sni)
    this.mode = route.mode
    this.mesh = route.mesh
    this.terminate = route.mode === RouteMode.TerminateMtls
    this.allows = allowMatcher(route.allow, route.deny)
    this.upstreams = Object.freeze(route.upstreams.map(toUpstream))
    // Weight 0 means "never picked"; a route whose upstreams all have weight 0 spreads evenly instead.
    const allZero = this.upstreams.every((u) => u.weight === 0)
    this.weights = this.upstreams.map((u) => (allZero ? 1 : u.weight))
    this.current = this.upstreams.map(() => 0)
    this.tiered = this.upstreams.some((u) => u.priority > 0)
  }

  /**
   * Picks the next upstream with nginx's smooth weighted round robin: each candidate's current weight grows
   * by its weight, the largest wins and loses the total. `tried` (indexes already tried for this connection)
   * are skipped, as nginx skips peers in its `tried` bitmap. Returns the index, or -1 when none is left.
   */
  pick(tried?: ReadonlySet<number>): number {
    const n = this.upstreams.length
    if (n === 1) return tried?.has(0) ? -1 : 0
    // Priorities (Envoy's priority levels, Kuma's locality-aware balancing): only the lowest priority that still
    // has an upstream this connection has not failed on. Routes without priorities skip this (the hot path).
    const level = this.tiered ? this.lowestLevel(tried) : 0
    let best = -1
    let total = 0
    for (let i = 0; i < n; i++) {
      const w = this.weights[i]!
      if (w === 0 || tried?.has(i) || (this.tiered && this.upstreams[i]!.priority !== level)) continue
      const c = this.current[i]! + w
      this.current[i] = c
      total += w
      if (best < 0 || c > this.current[best]!) best = i
    }
    if (best >= 0) this.current[best] = this.current[best]! - total
    return best
  }

  /** The lowest priority among upstreams that can still be picked (weight > 0 unless all are 0, not tried). */
  private lowestLevel(tried?: ReadonlySet<number>): number {
    let level = Number.POSITIVE_INFINITY
    for (let i = 0; i < this.upstreams.length; i++)
      if (this.weights[i] !== 0 && !tried?.has(i) && this.upstreams[i]!.priority < level)
        level = this.upstreams[i]!.priority
    return level
  }
}

function toUpstream(u: TableUpstream): Upstream {
  return Object.freeze({
    address: u.address,
    port: u.port,
    weight: u.weight,
    priority: u.priority ?? 0,
    key: `${u.address}:${u.port}`,
    ...(u.tls?.enabled ? { tls: u.tls } : {}),
  })
}

/** Immutable SNI → Route map of one table. */
export class RoutingTable {
  readonly zone: string
  readonly generation: number | undefined
  readonly revision: string | undefined
  readonly digest: string
  readonly size: number
  /** CA certificates (PEM) per mesh whose terminate-mtls routes this table has (`meshes`). */
  readonly meshCas: ReadonlyMap<string, readonly string[]>
  /**
   * SNI → route. For an envelope of route objects: built with the envelope's route objects, each turned into a
   * `Route` on its first lookup (a swap then costs one Map insertion per route, docs/decisions/008). For a
   * `CompactZoneTable` (admitted off the event loop, decision 012): empty at first; a route found in the compact
   * index is parsed and built on its first lookup and kept here, so the hot path stays one Map hit. A route's
   * balancer, once built, stays with this table.
   */
  private readonly routes: Map<string, Route | TableRoute>
  private readonly compact: CompactRoutes | undefined

  constructor(readonly envelope: ZoneTable) {
    this.zone = envelope.zone
    this.generation = envelope.generation
    this.revision = envelope.revision
    this.digest = envelope.digest
    const routes = new Map<string, Route | TableRoute>()
    if (envelope instanceof CompactZoneTable) {
      this.compact = envelope.compact
      this.size = envelope.compact.count
    } else {
      this.compact = undefined
      for (const r of envelope.routes) routes.set(lowerAscii(r.sni), r)
      this.size = routes.size
    }
    this.routes = routes
    this.meshCas = meshCasOf(envelope)
  }

  /**
   * True once the compact routes under this table were released (`releaseCompact`): it is no longer served, and
   * a lookup of a route not built yet throws a TableReleasedError instead of answering.
   */
  get released(): boolean {
    return this.compact?.released === true
  }

  /** The route of a lower-cased SNI. */
  private route(key: string): Route | undefined {
    const r = this.routes.get(key)
    if (r instanceof Route) return r
    if (r === undefined) {
      if (this.compact === undefined) return undefined
      const i = findRoute(this.compact, key)
      if (i < 0) return undefined
      const built = new Route(routeAt(this.compact, i))
      this.routes.set(key, built)
      return built
    }
    const built = new Route(r)
    this.routes.set(key, built)
    return built
  }

  /** The route for a server name, matched exactly after ASCII lower-casing, or undefined. */
  lookup(serverName: string): Route | undefined {
    const hit = this.routes.get(serverName)
    return hit instanceof Route ? hit : this.route(lowerAscii(serverName))
  }

  /** True when the table has a route for this (already lower-cased) SNI. Throws a TableReleasedError once released. */
  has(sni: string): boolean {
    if (this.routes.has(sni)) return true
    return this.compact !== undefined && findRoute(this.compact, sni) >= 0
  }

  /** Every route, in envelope order. */
  list(): Route[] {
    const c = this.compact
    if (c === undefined) return [...this.routes.keys()].map((k) => this.route(k)!)
    return Array.from({ length: c.count }, (_, i) => this.route(sniAt(c, i))!)
  }
}

/** CA certificates (PEM) per mesh of a table envelope's `meshes`. Pure. */
export function meshCasOf(envelope: Pick<ZoneTable, 'meshes'>): ReadonlyMap<string, readonly string[]> {
  return new Map((envelope.meshes ?? []).map((m) => [m.name, Object.freeze([...m.caCerts])]))
}

const UPPER = /[A-Z]/
const NON_ASCII = /[^\x00-\x7f]/

/**
 * ASCII-only lower-casing: A-Z become a-z, every other character is kept (so no Unicode case folding, e.g.
 * the Kelvin sign never turns into "k"). Returns the same string when there is nothing to change. Pure.
 */
export function lowerAscii(s: string): string {
  if (!UPPER.test(s)) return s
  return NON_ASCII.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s.toLowerCase()
}

export const TableRejection = {
  /** The value is not a ZoneTable envelope (schema problems). */
  Invalid: 'invalid',
  /** The digest does not match the canonical JSON of zone+egresses+routes. */
  DigestMismatch: 'digest-mismatch',
  /** Two routes have the same SNI after lower-casing. */
  DuplicateSni: 'duplicate-sni',
  /** The table is for another zone than the egress's. */
  WrongZone: 'wrong-zone',
  /** Its generation is not newer than the one served. */
  Stale: 'stale-generation',
  /** Neither table has a generation and the digests are equal: nothing to do. */
  Unchanged: 'unchanged',
  /** Trusted keys are configured and the table has no signature. */
  Unsigned: 'unsigned',
  /** Signed by a key that is not trusted. */
  UntrustedKey: 'untrusted-key',
  /** The signature does not verify (altered or forged table). */
  BadSignature: 'bad-signature',
} as const
export type TableRejection = (typeof TableRejection)[keyof typeof TableRejection]

export type TableCheck = { ok: true; table: ZoneTable } | { ok: false; reason: TableRejection; problems: string[] }

/**
 * Validates an untrusted value as a table envelope: schema shape (schemas/validators.ts), digest equal to
 * `tableDigest`, integer generation when present, unique SNIs, (when `zone` is given) the right zone and (when
 * `trustedKeys` is non-empty) a valid signature by one of them (schemas/signing.ts). Returns the typed table or
 * the first failing reason with every problem found for it. Pure; never throws.
 */
export function validateTableEnvelope(value: unknown, zone?: string, trustedKeys?: readonly string[]): TableCheck {
  const shape = validateZoneTableShape(value)
  if (shape.length > 0) {
    return { ok: false, reason: TableRejection.Invalid, problems: shape.map((p) => `${p.path || '/'}: ${p.message}`) }
  }
  const table = value as ZoneTable
  if (zone !== undefined && table.zone !== zone) {
    return { ok: false, reason: TableRejection.WrongZone, problems: [`table is for zone ${table.zone}, not ${zone}`] }
  }
  const seen = new Set<string>()
  const dups: string[] = []
  for (const r of table.routes) {
    const key = lowerAscii(r.sni)
    if (seen.has(key)) dups.push(`duplicate route sni ${JSON.stringify(r.sni)}`)
    seen.add(key)
  }
  if (dups.length > 0) return { ok: false, reason: TableRejection.DuplicateSni, problems: dups }
  // The routes are serialised once, for the digest and the signature.
  const parts = tableCanonicalParts(table)
  const digest = tableDigest(table, parts)
  if (digest !== table.digest) {
    return {
      ok: false,
      reason: TableRejection.DigestMismatch,
      problems: [`digest ${table.digest} does not match content ${digest}`],
    }
  }
  if (trustedKeys !== undefined && trustedKeys.length > 0) {
    const sig = verifyTableSignature(table, trustedKeys, parts)
    if (!sig.ok) return { ok: false, reason: sig.reason, problems: [sig.problem] }
  }
  return { ok: true, table }
}

/**
 * Whether `next` may replace `current`: always when nothing is served; when both have a generation, only a
 * strictly greater one; a table without a generation (a `zonegate compile` file) replaces one without a
 * generation when its digest differs, and never replaces a published (generation-bearing) table.
 * Returns null when `next` may replace `current`, else the rejection reason. Pure.
 */
export function staleReason(
  current: Pick<ZoneTable, 'generation' | 'digest'> | undefined,
  next: Pick<ZoneTable, 'generation' | 'digest'>,
): null | typeof TableRejection.Stale | typeof TableRejection.Unchanged {
  if (current === undefined) return null
  if (next.generation === undefined) {
    if (current.generation !== undefined) return TableRejection.Stale
    return next.digest === current.digest ? TableRejection.Unchanged : null
  }
  if (current.generation === undefined) return null
  return next.generation > current.generation ? null : TableRejection.Stale
}

/** True when `next` may replace `current` (see `staleReason`). Pure. */
export function isNewerTable(
  current: Pick<ZoneTable, 'generation' | 'digest'> | undefined,
  next: Pick<ZoneTable, 'generation' | 'digest'>,
): boolean {
  return staleReason(current, next) === null
}
