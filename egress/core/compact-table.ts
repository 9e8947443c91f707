import { MessageChannel } from 'node:worker_threads'
import type { TableRoute, ZoneTable } from '../../schemas/table.js'

/**
 * A table's routes in a compact, transferable form (docs/decisions/012-off-loop-admission.md): built where the
 * table is admitted (the admission worker thread), handed to the event loop by transferring its ArrayBuffers
 * (no copy, no parse), and read there without turning 100,000 routes into JS objects.
 *
 * - `sni` / `sniOff`: every route's SNI, ASCII lower-cased, as UTF-16 code units end to end (route i is
 *   `sni[sniOff[i] .. sniOff[i+1])`), so a lookup compares code units exactly as a `Map<string>` would.
 * - `json` / `jsonOff`: every route's JSON (UTF-8), joined with `,` so that `[` + json + `]` is the routes array
 *   (route i is `json[jsonOff[i] .. jsonOff[i+1] - 1)`). A route becomes a JS object only on its first lookup.
 *   The admission writes the routes' canonical JSON here (keys sorted), the very bytes the digest was checked
 *   over, so `[` + json + `]` is `canonicalJson(routes)`.
 * - `slots`: an open-addressing hash index (FNV-1a over the lower-cased SNI, linear probing); a slot holds the
 *   route index + 1, or 0 when empty. At most half full.
 * - `released`: set once by `releaseCompact` when the table is no longer served; every reader below then refuses
 *   with a `TableReleasedError` instead of reading the (detached) buffers.
 * No I/O; everything here is pure except `releaseCompact` / `holdCompact`, which change a table's state.
 */
export interface CompactRoutes {
  readonly count: number
  readonly sni: Uint16Array
  readonly sniOff: Uint32Array
  readonly json: Uint8Array
  readonly jsonOff: Uint32Array
  readonly slots: Int32Array
  /** Some upstream carries a TLS client key (/config_dump must redact it). */
  readonly clientKeys: boolean
  /** Set by `releaseCompact` only (never by hand): the buffers may be gone, every read refuses. */
  released: boolean
}

/** A read of a compact table after `releaseCompact`: a bug in whoever kept the table, never a routing answer. */
export class TableReleasedError extends Error {
  constructor(what: string) {
    super(`compact routing table already released (no longer served): ${what} refused`)
    this.name = 'TableReleasedError'
  }
}

const views = (c: CompactRoutes): ArrayBufferView[] => [c.sni, c.sniOff, c.json, c.jsonOff, c.slots]

/** The ArrayBuffers of a compact table, for `postMessage(…, transferList)`. */
export function transferList(c: CompactRoutes): ArrayBuffer[] {
  if (c.released) throw new TableReleasedError('transfer')
  return views(c).map((a) => a.buffer as ArrayBuffer)
}

/** Holds taken by `holdCompact` and not given back yet, per table; releases asked while held. */
const holds = new WeakMap<CompactRoutes, number>()
const releaseAsked = new WeakSet<CompactRoutes>()

/**
 * Keeps `c` readable until the returned function is called, for a reader that reads it across awaits (the
 * state-file writer hands its bytes to the file system). A `releaseCompact` asked meanwhile takes effect when the
 * last hold is given back. Throws a TableReleasedError when `c` is already released. Idempotent per hold.
 */
export function holdCompact(c: CompactRoutes): () => void {
  if (c.released) throw new TableReleasedError('hold')
  holds.set(c, (holds.get(c) ?? 0) + 1)
  let held = true
  return () => {
    if (!held) return
    held = false
    const left = holds.get(c)! - 1
    if (left > 0) holds.set(c, left)
    else {
      holds.delete(c)
      if (releaseAsked.delete(c)) releaseCompact(c)
    }
  }
}

/**
 * Releases a compact table that nothing reads any more (docs/decisions/012-off-loop-admission.md, "Releasing a
 * replaced table"): marks it released, so every later read throws a TableReleasedError, and frees its buffers at
 * once instead of at V8's next major GC, by transferring them into a MessageChannel whose other end is closed:
 * the transfer detaches them here and the message, which owns their memory, is dropped unread. Only buffers the
 * table's arrays cover whole are detached (those built by `compactRoutes` / `compactFromCanonical`, and those
 * transferred from the admission worker); an array that is a view into a larger buffer (a table received over the
 * workers' IPC channel, whose message buffer Node may share with the next message) is left to the GC. While
 * `holdCompact` holds are out, the release waits for the last one. Returns the bytes detached now (0 when held,
 * already released or nothing was detachable). Never throws.
 */
export function releaseCompact(c: CompactRoutes): number {
  if (c.released) return 0
  if ((holds.get(c) ?? 0) > 0) {
    releaseAsked.add(c)
    return 0
  }
  c.released = true
  const whole = new Set<ArrayBuffer>()
  const partial = new Set<ArrayBufferLike>()
  for (const v of views(c)) {
    if (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) whole.add(v.buffer as ArrayBuffer)
    else partial.add(v.buffer)
  }
  const buffers = [...whole].filter((b) => !partial.has(b) && b.byteLength > 0)
  if (buffers.length === 0) return 0
  const bytes = buffers.reduce((n, b) => n + b.byteLength, 0)
  const { port1, port2 } = new MessageChannel()
  port2.close()
  try {
    port1.postMessage(null, buffers)
  } catch {
    return 0 // not detachable (a SharedArrayBuffer): left to the GC, still refused to readers
  } finally {
    port1.close()
  }
  return bytes
}

const UPPER = /[A-Z]/
const NON_ASCII = /[^\x00-\x7f]/

/** ASCII-only lower-casing (as routing-table.ts `lowerAscii`; repeated here so this module has no imports). */
function lower(s: string): string {
  if (!UPPER.test(s)) return s
  return NON_ASCII.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s.toLowerCase()
}

function hash(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/**
 * Builds the compact form of `routes` (already validated: SNIs unique after lower-casing). Each route's JSON is
 * `JSON.stringify(route)`, so reading it back gives an equal route. Pure.
 */
export function compactRoutes(routes: readonly TableRoute[]): CompactRoutes {
  const n = routes.length
  const keys: string[] = new Array(n)
  const texts: string[] = new Array(n)
  for (let i = 0; i < n; i++) {
    keys[i] = lower(routes[i]!.sni)
    texts[i] = JSON.stringify(routes[i])
  }
  return compactFromJson(keys, texts, texts.join(','), hasClientKeys(routes))
}

/** True when some upstream of `routes` carries a TLS client key. Pure. */
export function hasClientKeys(routes: readonly TableRoute[]): boolean {
  for (let i = 0; i < routes.length; i++) {
    const ups = routes[i]!.upstreams
    for (let j = 0; j < ups.length; j++) if (ups[j]!.tls?.clientKey !== undefined) return true
  }
  return false
}

/**
 * Builds the compact form from each route's lower-cased SNI (`keys`, unique), its JSON (`texts`) and `joined` =
 * `texts.join(',')`, which becomes the `json` buffer as it is (one UTF-8 encoding, no per-route copy). Pure.
 */
function compactFromJson(
  keys: readonly string[],
  texts: readonly string[],
  joined: string,
  clientKeys: boolean,
): CompactRoutes {
  const n = keys.length
  const bytes = Buffer.byteLength(joined)
  // a buffer of its own (never Node's shared pool), since it is transferred
  const jsonBuf = Buffer.from(new ArrayBuffer(bytes))
  if (jsonBuf.write(joined, 0, 'utf8') !== bytes) throw new Error('compact routes: short write')
  const jsonOff = new Uint32Array(new ArrayBuffer((n + 1) * 4))
  // ASCII (the usual case): byte offsets are string offsets
  const ascii = bytes === joined.length
  let j = 0
  for (let i = 0; i < n; i++) {
    jsonOff[i] = j
    j += (ascii ? texts[i]!.length : Buffer.byteLength(texts[i]!)) + 1
  }
  jsonOff[n] = n === 0 ? 0 : j
  if (n > 0 && j - 1 !== bytes) throw new Error('compact routes: texts do not add up to the joined JSON')
  return indexCompact(keys, new Uint8Array(jsonBuf.buffer, jsonBuf.byteOffset, bytes), jsonOff, clientKeys)
}

/**
 * Builds the compact form from each route's lower-cased SNI (`keys`, unique) and the canonical JSON of the routes
 * array (`canonicalJson(routes)`, schemas/digest.ts) of routes valid per the table schema, which becomes the `json`
 * buffer as it is. Route boundaries are found in that text: a route's canonical JSON starts with its first member
 * in sorted order, `allow`, `deny` or `kind` (required), and in the canonical JSON of schema-valid routes `},{"allow":`,
 * `},{"deny":` and `},{"kind":` occur only between two routes (inside a string a `"` is escaped, and no other object
 * of a route has these members or is an array item after a `}`). Returns undefined when the boundaries found do
 * not make `keys.length` routes (the caller builds the compact form another way). Pure.
 */
export function compactFromCanonical(
  keys: readonly string[],
  routesJson: string,
  clientKeys: boolean,
): CompactRoutes | undefined {
  const n = keys.length
  const joined = routesJson.slice(1, -1)
  const starts: number[] = new Array(n)
  if (n > 0) {
    starts[0] = 0
    let found = 1
    let at = joined.indexOf('},{"', 0)
    while (at >= 0) {
      const k = joined.charCodeAt(at + 4)
      if (
        (k === 0x6b && joined.startsWith('kind":', at + 4)) ||
        (k === 0x61 && joined.startsWith('allow":', at + 4)) ||
        (k === 0x64 && joined.startsWith('deny":', at + 4))
      ) {
        if (found === n) return undefined
        starts[found++] = at + 2
      }
      at = joined.indexOf('},{"', at + 3)
    }
    if (found !== n) return undefined
  }
  const bytes = Buffer.byteLength(joined)
  const jsonBuf = Buffer.from(new ArrayBuffer(bytes))
  if (jsonBuf.write(joined, 0, 'utf8') !== bytes) return undefined
  const jsonOff = new Uint32Array(new ArrayBuffer((n + 1) * 4))
  if (bytes === joined.length) {
    for (let i = 0; i < n; i++) jsonOff[i] = starts[i]!
  } else {
    // not ASCII: byte offsets, segment by segment
    let b = 0
    for (let i = 0; i < n; i++) {
      jsonOff[i] = b
      b += Buffer.byteLength(joined.slice(starts[i]!, i + 1 < n ? starts[i + 1]! : joined.length))
    }
  }
  jsonOff[n] = n === 0 ? 0 : bytes + 1
  return indexCompact(keys, new Uint8Array(jsonBuf.buffer, jsonBuf.byteOffset, bytes), jsonOff, clientKeys)
}

/** The SNI arrays and hash index over `keys`, around the routes' JSON and offsets. Pure. */
function indexCompact(
  keys: readonly string[],
  json: Uint8Array,
  jsonOff: Uint32Array,
  clientKeys: boolean,
): CompactRoutes {
  const n = keys.length
  let sniLen = 0
  for (let i = 0; i < n; i++) sniLen += keys[i]!.length
  const sni = new Uint16Array(new ArrayBuffer(sniLen * 2))
  const sniOff = new Uint32Array(new ArrayBuffer((n + 1) * 4))
  let cap = 8
  while (cap < n * 2) cap *= 2
  const slots = new Int32Array(new ArrayBuffer(cap * 4))
  const mask = cap - 1
  let s = 0
  for (let i = 0; i < n; i++) {
    const k = keys[i]!
    sniOff[i] = s
    for (let c = 0; c < k.length; c++) sni[s++] = k.charCodeAt(c)
    let slot = hash(k) & mask
    while (slots[slot] !== 0) slot = (slot + 1) & mask
    slots[slot] = i + 1
  }
  sniOff[n] = s
  return { count: n, sni, sniOff, json, jsonOff, slots, clientKeys, released: false }
}

/** Index of the route whose lower-cased SNI is exactly `key` (already lower-cased), or -1. Pure. */
export function findRoute(c: CompactRoutes, key: string): number {
  if (c.released) throw new TableReleasedError(`lookup of ${JSON.stringify(key)}`)
  const mask = c.slots.length - 1
  let slot = hash(key) & mask
  for (;;) {
    const v = c.slots[slot]!
    if (v === 0) return -1
    const i = v - 1
    const start = c.sniOff[i]!
    if (c.sniOff[i + 1]! - start === key.length) {
      let k = 0
      while (k < key.length && c.sni[start + k] === key.charCodeAt(k)) k++
      if (k === key.length) return i
    }
    slot = (slot + 1) & mask
  }
}

/** The lower-cased SNI of route `i`. Pure. */
export function sniAt(c: CompactRoutes, i: number): string {
  if (c.released) throw new TableReleasedError(`SNI of route ${i}`)
  return String.fromCharCode(...c.sni.subarray(c.sniOff[i]!, c.sniOff[i + 1]!))
}

const decoder = new TextDecoder()

/** The JSON text of route `i`. Pure. */
export function routeText(c: CompactRoutes, i: number): string {
  if (c.released) throw new TableReleasedError(`route ${i}`)
  return decoder.decode(c.json.subarray(c.jsonOff[i]!, c.jsonOff[i + 1]! - 1))
}

/** Route `i` as an object (parsed from its JSON). Pure. */
export function routeAt(c: CompactRoutes, i: number): TableRoute {
  return JSON.parse(routeText(c, i)) as TableRoute
}

/** A table envelope without its routes. */
export type TableMeta = Omit<ZoneTable, 'routes'>

/**
 * An admitted table held compactly: the envelope's other fields as they were, and the routes in compact form.
 * It is a `ZoneTable` for every reader, but `routes` parses every route on each read (for tests, /config_dump
 * and other rare readers; the proxy reads routes through `RoutingTable`, the state file through `tableJsonParts`).
 * Only the admission path creates one, after the checks (schema, digest, signature) passed.
 */
export class CompactZoneTable implements ZoneTable {
  readonly apiVersion!: ZoneTable['apiVersion']
  readonly kind!: ZoneTable['kind']
  readonly zone!: string
  readonly digest!: string
  readonly egresses!: ZoneTable['egresses']
  declare readonly generation?: number
  declare readonly revision?: string
  declare readonly meshes?: ZoneTable['meshes']
  declare readonly signature?: ZoneTable['signature']

  /**
   * @param checkedWith the trusted keys the admission checked the signature with (empty: not checked); the
   *   lifecycle refuses a compact table checked with other keys than its own.
   */
  constructor(
    meta: TableMeta,
    readonly compact: CompactRoutes,
    readonly checkedWith: readonly string[] = [],
  ) {
    Object.assign(this, meta)
    // not part of the envelope (JSON.stringify, spreads and equality see the envelope only)
    Object.defineProperty(this, 'compact', { enumerable: false, value: compact })
    Object.defineProperty(this, 'checkedWith', { enumerable: false, value: Object.freeze([...checkedWith]) })
  }

  get routes(): TableRoute[] {
    if (this.compact.released) throw new TableReleasedError(`routes of table generation ${this.generation ?? '(none)'}`)
    const out: TableRoute[] = new Array(this.compact.count)
    for (let i = 0; i < out.length; i++) out[i] = routeAt(this.compact, i)
    return out
  }

  /** The envelope's fields other than `routes`. */
  meta(): TableMeta {
    const { ...meta } = this as unknown as Record<string, unknown>
    return meta as TableMeta
  }

  toJSON(): ZoneTable {
    return { ...this.meta(), routes: this.routes }
  }
}

/**
 * Releases a table that is no longer served (see `releaseCompact`): a `CompactZoneTable`'s buffers; nothing for a
 * table of route objects (the GC frees those). Returns the bytes detached now. Never throws.
 */
export function releaseTable(table: ZoneTable | undefined): number {
  return table instanceof CompactZoneTable ? releaseCompact(table.compact) : 0
}

/** Number of routes of a table, without reading a compact table's routes. Pure. */
export function routeCount(table: ZoneTable): number {
  return table instanceof CompactZoneTable ? table.compact.count : table.routes.length
}

/**
 * The envelope's JSON as pieces to write one after another (the state file): for a compact table the routes are
 * its JSON bytes as they are, nothing is parsed or re-serialised. Pure.
 */
export function tableJsonParts(table: ZoneTable): (string | Uint8Array)[] {
  if (!(table instanceof CompactZoneTable)) return [JSON.stringify(table)]
  if (table.compact.released) throw new TableReleasedError(`JSON of table generation ${table.generation ?? '(none)'}`)
  const meta = JSON.stringify(table.meta())
  const open = meta === '{}' ? '{"routes":[' : `${meta.slice(0, -1)},"routes":[`
  return [open, table.compact.json, ']}']
}
