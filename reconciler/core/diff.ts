import { canonicalJson } from '../../schemas/digest.js'
import type { TableEgress, TableRoute, TableUpstream, ZoneTable } from '../../schemas/table.js'

/**
 * Route-level diff of two sets of zone tables (two revisions), for `zonegate diff`: which zones, routes and
 * upstreams changed and how. Pure. The reconciler's pass does not use it: it plans its writes by digest against
 * the inventory (reconciler/steps/plan.ts), which is all publishing needs.
 */

export const ZoneStatus = {
  Unchanged: 'unchanged',
  Added: 'added',
  Removed: 'removed',
  Changed: 'changed',
} as const
export type ZoneStatus = (typeof ZoneStatus)[keyof typeof ZoneStatus]

/** One upstream that appeared (`before` absent), disappeared (`after` absent) or changed weight. */
export interface UpstreamChange {
  address: string
  port: number
  zone?: string
  /** Weight before; absent when the upstream is new. */
  before?: number
  /** Weight after; absent when the upstream is gone. */
  after?: number
}

/** A route present on both sides whose content differs. */
export interface RouteChange {
  sni: string
  /**
   * The route fields that differ, in this order: `mesh`, `service`, `kind`, `mode`, `tls`, `allow`, `deny`,
   * `upstreams` (an upstream's `tls` counts as `upstreams`).
   */
  fields: string[]
  before: TableRoute
  after: TableRoute
  /** Only the upstreams that were added, removed or re-weighted (by address, port, zone). */
  upstreams: UpstreamChange[]
}

/** An egress listed in the table that appeared, disappeared or changed (address, ports). */
export interface EgressChange {
  name: string
  before?: TableEgress
  after?: TableEgress
}

export interface ZoneDiff {
  zone: string
  status: ZoneStatus
  /** Digest before / after; absent on the side where the zone has no table. */
  before?: string
  after?: string
  /** For an added zone every route is added; for a removed zone every route is removed. Sorted by SNI. */
  routes: { added: TableRoute[]; removed: TableRoute[]; changed: RouteChange[] }
  egresses: EgressChange[]
}

/** Tables keyed by zone, or a list of tables. */
export type ZoneTables = ReadonlyMap<string, ZoneTable> | Iterable<ZoneTable>

const bytewise = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

function byZone(tables: ZoneTables): Map<string, ZoneTable> {
  if (tables instanceof Map) return tables as Map<string, ZoneTable>
  const m = new Map<string, ZoneTable>()
  for (const t of tables as Iterable<ZoneTable>) m.set(t.zone, t)
  return m
}

const upstreamKey = (u: TableUpstream) => `${u.address}\0${u.port}\0${u.zone ?? ''}`

function upstreamChanges(before: TableUpstream[], after: TableUpstream[]): UpstreamChange[] {
  const b = new Map(before.map((u) => [upstreamKey(u), u]))
  const a = new Map(after.map((u) => [upstreamKey(u), u]))
  const out: UpstreamChange[] = []
  for (const key of [...new Set([...b.keys(), ...a.keys()])].sort(bytewise)) {
    const x = b.get(key)
    const y = a.get(key)
    if (x && y && x.weight === y.weight) continue
    const u = (y ?? x) as TableUpstream
    out.push({
      address: u.address,
      port: u.port,
      ...(u.zone === undefined ? {} : { zone: u.zone }),
      ...(x ? { before: x.weight } : {}),
      ...(y ? { after: y.weight } : {}),
    })
  }
  return out
}

const sameUpstream = (a: TableUpstream, b: TableUpstream) =>
  a.address === b.address &&
  a.port === b.port &&
  a.weight === b.weight &&
  a.zone === b.zone &&
  (a.tls === b.tls || canonicalJson(a.tls) === canonicalJson(b.tls))

const sameList = (a: string[] | undefined, b: string[] | undefined) =>
  a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]))

/** Field-by-field equality of two routes of the table shape: no serialisation, so 10,000s per ms. */
function sameRoute(a: TableRoute, b: TableRoute): boolean {
  if (a === b) return true
  if (a.sni !== b.sni || a.mesh !== b.mesh || a.service !== b.service || a.kind !== b.kind || a.mode !== b.mode)
    return false
  if (a.tls?.enabled !== b.tls?.enabled || a.tls?.serverName !== b.tls?.serverName || !a.tls !== !b.tls) return false
  if (!sameList(a.allow, b.allow) || !sameList(a.deny, b.deny)) return false
  if (a.upstreams.length !== b.upstreams.length) return false
  return a.upstreams.every((u, i) => sameUpstream(u, b.upstreams[i] as TableUpstream))
}

function routeChange(before: TableRoute, after: TableRoute): RouteChange | undefined {
  if (sameRoute(before, after)) return undefined
  const fields: string[] = []
  for (const f of ['mesh', 'service', 'kind', 'mode', 'tls', 'allow', 'deny', 'upstreams'] as const)
    if (canonicalJson(before[f]) !== canonicalJson(after[f])) fields.push(f)
  if (fields.length === 0) return undefined
  return { sni: after.sni, fields, before, after, upstreams: upstreamChanges(before.upstreams, after.upstreams) }
}

const isSortedBySni = (routes: readonly TableRoute[]) =>
  routes.every((r, i) => i === 0 || (routes[i - 1] as TableRoute).sni < r.sni)
const bySni = (routes: readonly TableRoute[]) =>
  isSortedBySni(routes) ? routes : [...routes].sort((a, b) => bytewise(a.sni, b.sni))

/** Merge-join of two route lists by SNI (tables are sorted by SNI; others are sorted first). Linear. */
function diffRoutes(before: TableRoute[], after: TableRoute[]): ZoneDiff['routes'] {
  const b = bySni(before)
  const a = bySni(after)
  const added: TableRoute[] = []
  const removed: TableRoute[] = []
  const changed: RouteChange[] = []
  let i = 0
  let j = 0
  while (i < b.length || j < a.length) {
    const x = b[i]
    const y = a[j]
    if (y === undefined || (x !== undefined && x.sni < y.sni)) {
      removed.push(x as TableRoute)
      i++
    } else if (x === undefined || y.sni < x.sni) {
      added.push(y)
      j++
    } else {
      const c = routeChange(x, y)
      if (c) changed.push(c)
      i++
      j++
    }
  }
  return { added, removed, changed }
}

function diffEgresses(before: TableEgress[], after: TableEgress[]): EgressChange[] {
  const b = new Map(before.map((e) => [e.name, e]))
  const a = new Map(after.map((e) => [e.name, e]))
  const out: EgressChange[] = []
  for (const name of [...new Set([...b.keys(), ...a.keys()])].sort(bytewise)) {
    const x = b.get(name)
    const y = a.get(name)
    if (x && y && canonicalJson(x) === canonicalJson(y)) continue
    out.push({ name, ...(x ? { before: x } : {}), ...(y ? { after: y } : {}) })
  }
  return out
}

/**
 * Diffs two sets of zone tables. Returns one ZoneDiff per zone present on either side, sorted by zone:
 * `unchanged` (equal digests: the fast path, nothing else is compared), `added`, `removed` (explicit, with
 * every route listed as removed), or `changed` with the added, removed and changed routes (before/after
 * routes, the fields that differ and the upstreams whose weight changed) and the egress changes. Pure.
 */
export function diffZoneTables(previous: ZoneTables, next: ZoneTables): ZoneDiff[] {
  const prev = byZone(previous)
  const curr = byZone(next)
  const zones = [...new Set([...prev.keys(), ...curr.keys()])].sort(bytewise)
  const none = () => ({ added: [], removed: [], changed: [] })
  return zones.map((zone): ZoneDiff => {
    const b = prev.get(zone)
    const a = curr.get(zone)
    if (b && a && b.digest === a.digest)
      return { zone, status: ZoneStatus.Unchanged, before: b.digest, after: a.digest, routes: none(), egresses: [] }
    if (!b) {
      const t = a as ZoneTable
      const egresses = t.egresses.map((e) => ({ name: e.name, after: e }))
      return { zone, status: ZoneStatus.Added, after: t.digest, routes: { ...none(), added: [...t.routes] }, egresses }
    }
    if (!a) {
      const egresses = b.egresses.map((e) => ({ name: e.name, before: e }))
      return {
        zone,
        status: ZoneStatus.Removed,
        before: b.digest,
        routes: { ...none(), removed: [...b.routes] },
        egresses,
      }
    }
    return {
      zone,
      status: ZoneStatus.Changed,
      before: b.digest,
      after: a.digest,
      routes: diffRoutes(b.routes, a.routes),
      egresses: diffEgresses(b.egresses, a.egresses),
    }
  })
}

/** True when any zone is added, removed or changed. Pure. */
export function hasChanges(diffs: readonly ZoneDiff[]): boolean {
  return diffs.some((d) => d.status !== ZoneStatus.Unchanged)
}
