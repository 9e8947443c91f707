import type { ZoneTable } from '../../schemas/table.js'
import { type CompactRoutes, CompactZoneTable, compactRoutes, type TableMeta } from '../core/compact-table.js'
import type { MeshMaterial } from '../identity/egress-identity.js'
import type { ProxyOptions } from '../proxy/proxy-options.js'

export type { MeshMaterial } from '../identity/egress-identity.js'

/**
 * What the egress primary and its data-plane workers say to each other over the cluster IPC channel
 * (docs/decisions/015-egress-workers.md), and the pure helpers both sides use: the table in its compact form
 * (typed arrays, copied as they are by the channel's `advanced` serialization, never re-parsed), the mesh
 * identity material, and the workers' counters merged for /stats.
 */

/** A table as it crosses the channel: the envelope's fields and the routes in compact form. */
export interface WireTable {
  meta: TableMeta
  compact: CompactRoutes
  checkedWith: readonly string[]
}

/**
 * The compact wire form of an admitted table: a table admitted in the worker thread already is one; a table
 * admitted on the event loop (`--static`) is made compact here, once, in the primary. Pure.
 */
export function wireTable(table: ZoneTable): WireTable {
  if (table instanceof CompactZoneTable)
    return { meta: table.meta(), compact: table.compact, checkedWith: table.checkedWith }
  const { routes, ...meta } = table
  return { meta, compact: compactRoutes(routes), checkedWith: [] }
}

/**
 * A table too large to copy into every worker's channel (`FILE_TABLE_MIN_BYTES` and more of compact routes): the
 * primary writes its compact arrays once to a file of its own private directory, and each worker reads that file
 * off its event loop (the thread pool) and serves views into what it read. Through the channel, each worker
 * would get its own serialised copy: ~8 ms of the primary's loop per worker and 5–11 ms of the worker's for
 * 12 MB (benchmarks/RESULTS.md, 2026-12-03).
 */
export interface FileTable {
  meta: TableMeta
  checkedWith: readonly string[]
  count: number
  clientKeys: boolean
  file: string
  /** Byte offset and length in the file of `sni`, `sniOff`, `json`, `jsonOff` and `slots`, in that order. */
  parts: [number, number][]
  size: number
}

export const FILE_TABLE_MIN_BYTES = 1024 * 1024

const PARTS = ['sni', 'sniOff', 'json', 'jsonOff', 'slots'] as const

/** The compact arrays of `c` as byte views, and where each goes in a file (8-byte aligned). Pure. */
export function fileLayout(c: CompactRoutes): { views: Uint8Array[]; parts: [number, number][]; size: number } {
  const views: Uint8Array[] = []
  const parts: [number, number][] = []
  let at = 0
  for (const k of PARTS) {
    const a = c[k]
    const pad = (8 - (at % 8)) % 8
    if (pad > 0) views.push(new Uint8Array(pad))
    at += pad
    views.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    parts.push([at, a.byteLength])
    at += a.byteLength
  }
  return { views, parts, size: at }
}

/**
 * The `table-file` message for `wire` written at `file`, and the byte views to write there (`fileLayout`). Pure.
 */
export function fileTableOf(wire: WireTable, file: string): { table: FileTable; views: Uint8Array[] } {
  const { views, parts, size } = fileLayout(wire.compact)
  const table: FileTable = {
    meta: wire.meta,
    checkedWith: wire.checkedWith,
    count: wire.compact.count,
    clientKeys: wire.compact.clientKeys,
    file,
    parts,
    size,
  }
  return { table, views }
}

/**
 * The compact routes of a file table from the file's bytes. Throws when the bytes do not have the size and layout
 * the primary announced (a short or foreign file): the worker then keeps its table and does not acknowledge.
 */
export function compactFromFile(t: FileTable, bytes: Uint8Array): CompactRoutes {
  if (bytes.byteLength !== t.size)
    throw new Error(`table file ${t.file}: ${bytes.byteLength} bytes, expected ${t.size}`)
  if (t.parts.length !== PARTS.length) throw new Error(`table file ${t.file}: ${t.parts.length} parts`)
  // typed-array views need aligned offsets: a buffer that does not start on 8 bytes is copied once
  const b = bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes)
  const view = <T>(i: number, C: new (buf: ArrayBufferLike, off: number, len: number) => T, size: number): T => {
    const [off, len] = t.parts[i]!
    if (off % 8 !== 0 || len % size !== 0 || off + len > b.byteLength)
      throw new Error(`table file ${t.file}: part ${PARTS[i]} at ${off}+${len} does not fit`)
    return new C(b.buffer, b.byteOffset + off, len / size)
  }
  return {
    count: t.count,
    sni: view(0, Uint16Array, 2),
    sniOff: view(1, Uint32Array, 4),
    json: view(2, Uint8Array, 1),
    jsonOff: view(3, Uint32Array, 4),
    slots: view(4, Int32Array, 4),
    clientKeys: t.clientKeys,
    released: false,
  }
}

/** The admitted table a worker serves, from its wire form. Pure. */
export function tableFromWire(w: WireTable): CompactZoneTable {
  return new CompactZoneTable(w.meta, w.compact, w.checkedWith)
}

/** Settings a worker starts with (the egress flags that concern the data plane). */
export interface WorkerSettings {
  proxy: ProxyOptions
  logLevel?: string
  logFormat?: string
  zone?: string
  name?: string
  instance: string
  /** `--grace`: how long a worker whose primary is gone waits for its connections before exiting. */
  graceMs: number
}

export type ToWorker =
  | {
      t: 'init'
      slot: number
      settings: WorkerSettings
      listen: { host: string; port: number }
      seq: number
      table: WireTable
      identities: [string, MeshMaterial][]
    }
  | { t: 'table'; seq: number; table: WireTable }
  | { t: 'table-file'; seq: number; table: FileTable }
  | { t: 'identity'; mesh: string; material: MeshMaterial | null }
  | { t: 'stats'; id: number; metrics: boolean }
  | { t: 'drain'; graceMs: number }
  | { t: 'close' }

export type FromWorker =
  | { t: 'hello' }
  | {
      t: 'listening'
      seq: number
      generation: number | null
      address: { address: string; family: string; port: number }
    }
  | { t: 'listen-error'; error: string }
  /** `ms`: the worker's event-loop time for the swap (routing table over the compact routes + assignment). */
  | { t: 'swapped'; seq: number; generation: number | null; ms: number }
  | { t: 'stats'; id: number; snap: ProxySnapshot; metrics?: unknown[] }
  /** Answer to `drain`, sent once the worker's listener is closed: `active` connections are left to finish. */
  | { t: 'stopped'; active: number }
  | { t: 'drained'; destroyed: number }

/** One worker's counters, as /stats shows them (ProxyStats plus what TcpProxy adds). */
export interface ProxySnapshot {
  accepted: number
  routed: number
  terminated: number
  drainedClosed: number
  active: number
  bytesIn: number
  bytesOut: number
  rejected: Record<string, number>
  connectFailures: Record<string, number>
  routes: Record<string, { total: number; active: number }>
  /** Generation of the table the worker routes new connections on (null: none or unversioned). */
  generation: number | null
}

/** The counters a ProxyStats-like source holds, read into a snapshot. Pure (reads only). */
export function snapshotOf(p: {
  stats: {
    accepted: number
    routed: number
    terminated: number
    drainedClosed: number
    rejected: ReadonlyMap<string, number>
    connectFailures: ReadonlyMap<string, number>
    routes: ReadonlyMap<string, { total: number; active: number }>
  }
  activeConnections: number
  bytes(): { in: number; out: number }
  current?: { generation: number | undefined } | undefined
}): ProxySnapshot {
  const s = p.stats
  const b = p.bytes()
  const routes: Record<string, { total: number; active: number }> = {}
  for (const [sni, r] of s.routes) routes[sni] = { total: r.total, active: r.active }
  return {
    accepted: s.accepted,
    routed: s.routed,
    terminated: s.terminated,
    drainedClosed: s.drainedClosed,
    active: p.activeConnections,
    bytesIn: b.in,
    bytesOut: b.out,
    rejected: Object.fromEntries(s.rejected),
    connectFailures: Object.fromEntries(s.connectFailures),
    routes,
    generation: p.current?.generation ?? null,
  }
}

const add = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v
}

/** A snapshot of a worker that counted nothing and serves no table. Pure. */
export function emptySnapshot(): ProxySnapshot {
  return {
    accepted: 0,
    routed: 0,
    terminated: 0,
    drainedClosed: 0,
    active: 0,
    bytesIn: 0,
    bytesOut: 0,
    rejected: {},
    connectFailures: {},
    routes: {},
    generation: null,
  }
}

/** The sum of the workers' snapshots (generation: the lowest any worker serves, null if one has none). Pure. */
export function mergeSnapshots(snaps: readonly ProxySnapshot[]): ProxySnapshot {
  const out = emptySnapshot()
  let gen: number | null | undefined
  for (const s of snaps) {
    out.accepted += s.accepted
    out.routed += s.routed
    out.terminated += s.terminated
    out.drainedClosed += s.drainedClosed
    out.active += s.active
    out.bytesIn += s.bytesIn
    out.bytesOut += s.bytesOut
    add(out.rejected, s.rejected)
    add(out.connectFailures, s.connectFailures)
    for (const [sni, r] of Object.entries(s.routes)) {
      const m = out.routes[sni]
      if (m === undefined) out.routes[sni] = { total: r.total, active: r.active }
      else {
        m.total += r.total
        m.active += r.active
      }
    }
    gen = gen === undefined ? s.generation : gen === null || s.generation === null ? null : Math.min(gen, s.generation)
  }
  out.generation = gen ?? null
  return out
}

/**
 * Each worker's share of the egress-wide connection cap (`--max-connections`), so that together they never
 * hold more than the cap (rounded up: N workers may hold up to N − 1 more). Pure.
 */
export function perWorkerCap(maxConnections: number, workers: number): number {
  return Math.max(1, Math.ceil(maxConnections / workers))
}
