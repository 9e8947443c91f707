import type { ParsedDocument, Position } from '../model.js'

/**
 * The only code that turns an ajv `instancePath` (JSON pointer) or a field path into Kuma's dotted form and
 * a line/column. Kuma paths: `a.b`, `a[0]`, and `a["key"]` for map entries (`tags["kuma.io/service"]`) or
 * keys that are not plain identifiers. Pure.
 */

export type Segment = string | number

/** Fields whose keys are user data (map entries), always written `["key"]` as Kuma does. */
const MAP_FIELDS = new Set(['tags', 'labels'])
const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/

/**
 * Appends one segment to a Kuma path. `parentField` is the name of the field holding the map (so entries of
 * `tags`/`labels` are written `["k"]`). Pure.
 */
export function joinPath(path: string, segment: Segment, parentField?: string): string {
  if (typeof segment === 'number') return `${path}[${segment}]`
  if ((parentField !== undefined && MAP_FIELDS.has(parentField)) || !IDENT.test(segment))
    return `${path}[${JSON.stringify(segment)}]`
  return path === '' ? segment : `${path}.${segment}`
}

/** Builds a Kuma path from segments (`['mtls','backends',0,'name']` → `mtls.backends[0].name`). Pure. */
export function pathOf(segments: readonly Segment[]): string {
  let path = ''
  let parent: string | undefined
  for (const s of segments) {
    path = joinPath(path, s, parent)
    parent = typeof s === 'string' ? s : parent
  }
  return path
}

/** Splits a Kuma path back into segments (inverse of `pathOf`). Pure. */
export function segmentsOf(path: string): Segment[] {
  const out: Segment[] = []
  const re = /\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\.?([A-Za-z_][A-Za-z0-9_-]*)/gy
  let m: RegExpExecArray | null = re.exec(path)
  while (m !== null) {
    if (m[1] !== undefined) out.push(Number(m[1]))
    else if (m[2] !== undefined) out.push(JSON.parse(m[2]) as string)
    else if (m[3] !== undefined) out.push(m[3])
    if (re.lastIndex >= path.length) break
    m = re.exec(path)
  }
  return out
}

/** Decodes an ajv `instancePath` (`/mtls/backends/0/name`) into segments; array indexes become numbers. */
export function pointerSegments(pointer: string, value: unknown): Segment[] {
  if (pointer === '') return []
  const out: Segment[] = []
  let cur: unknown = value
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (Array.isArray(cur) && /^\d+$/.test(key)) {
      out.push(Number(key))
      cur = cur[Number(key)]
    } else {
      out.push(key)
      cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[key] : undefined
    }
  }
  return out
}

/** Converts an ajv `instancePath` into Kuma's dotted path, given the validated document value. Pure. */
export function pointerToPath(pointer: string, value: unknown): string {
  return pathOf(pointerSegments(pointer, value))
}

/**
 * The position of a field: its value's position if the field exists, else the nearest existing ancestor's
 * (a missing `networking.port` points at `networking`, or at the document). With `key: true`, prefers the
 * key's position (used for unknown-field warnings). Pure.
 */
export function locate(doc: ParsedDocument, path: string, opts?: { key?: boolean }): Position {
  if (opts?.key) {
    const k = doc.keyPositions.get(path)
    if (k) return k
  }
  const direct = doc.positions.get(path)
  if (direct) return direct
  const segs = segmentsOf(path)
  for (let n = segs.length - 1; n >= 0; n--) {
    const p = doc.positions.get(pathOf(segs.slice(0, n)))
    if (p) return p
  }
  return { line: doc.location.line, column: doc.location.column }
}
