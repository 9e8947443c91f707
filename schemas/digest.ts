import { createHash } from 'node:crypto'
import type { ZoneTable } from './table.js'

/**
 * Canonical JSON: object keys sorted bytewise (UTF-16 code unit order, as `Array.prototype.sort`), no
 * whitespace, `undefined` members dropped, arrays in their given order. Equal values give equal strings.
 * Pure.
 */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null'
  // JSON.stringify walks the value natively. Given an array of property names, it writes every object's members
  // in the order of that array (ECMA-262 SerializeJSONObject: PropertyList), so the sorted list of every key in
  // the value gives sorted objects at every depth with no JS call per value: about 3× faster than a replacer
  // function on a 100,000-route table (docs/decisions/008). A key that Object.prototype also has would be read
  // through the prototype on objects lacking it, and `toJSON` changes what is written: such values take the
  // replacer path below.
  const keys = new Set<string>()
  if (collectKeys(value, keys)) {
    let plain = true
    for (const k of keys)
      if (k in Object.prototype) {
        plain = false
        break
      }
    if (plain) return JSON.stringify(value, [...keys].sort()) ?? 'null'
  }
  return canonicalJsonReplacer(value)
}

/** Adds the own enumerable keys of every object in `value` to `keys`; false when some object has `toJSON`. */
function collectKeys(value: unknown, keys: Set<string>): boolean {
  if (value === null || typeof value !== 'object') return true
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!collectKeys(value[i], keys)) return false
    return true
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return false
  const obj = value as Record<string, unknown>
  const own = Object.keys(obj)
  for (let i = 0; i < own.length; i++) {
    const k = own[i]!
    keys.add(k)
    if (!collectKeys(obj[k], keys)) return false
  }
  return true
}

/** The previous fast path: JSON.stringify with a replacer that sorts each object's keys. Pure. */
function canonicalJsonReplacer(value: unknown): string {
  // Objects with integer-like keys are enumerated by JS in numeric order whatever the insertion order, so a
  // value holding one is serialised by the hand-written walk instead.
  indexKeySeen = false
  const fast = JSON.stringify(value, sortKeys) ?? 'null'
  return indexKeySeen ? canonicalJsonWalk(value) : fast
}

let indexKeySeen = false
const startsWithDigit = (k: string) => {
  const c = k.charCodeAt(0)
  return c >= 48 && c <= 57
}

function sortKeys(_key: string, v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
  const obj = v as Record<string, unknown>
  const keys = Object.keys(obj)
  let sorted = true
  for (let i = 0; i < keys.length; i++) {
    if (startsWithDigit(keys[i]!)) indexKeySeen = true
    if (i > 0 && keys[i - 1]! > keys[i]!) sorted = false
  }
  if (sorted) return v
  keys.sort()
  const out: Record<string, unknown> = Object.create(null)
  for (const k of keys) out[k] = obj[k]
  return out
}

/** The reference walk (also used for values with integer-like keys). Pure. */
export function canonicalJsonWalk(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (value === undefined) return 'null'
    return JSON.stringify(value)
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJsonWalk(v))).join(',')}]`
  const obj = value as Record<string, unknown>
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJsonWalk(obj[k])}`).join(',')}}`
}

/** The canonical JSON of the parts of a table that carry its content (shared by the digest and the signature). */
export interface TableCanonicalParts {
  egresses: string
  routes: string
  /** Absent when the table has no `meshes`. */
  meshes?: string
}

/** canonicalJson of a table's egresses, routes and meshes, each computed once. Pure. */
export function tableCanonicalParts(table: Pick<ZoneTable, 'egresses' | 'routes' | 'meshes'>): TableCanonicalParts {
  return {
    egresses: canonicalJson(table.egresses),
    routes: canonicalJson(table.routes),
    ...(table.meshes === undefined ? {} : { meshes: canonicalJson(table.meshes) }),
  }
}

/**
 * `sha256:<hex>` of the canonical JSON of `{zone, egresses, routes}` plus `meshes` when the table has them
 * (docs/design.md §3): a CA change republishes the zone. A table without `meshes` hashes exactly as before.
 * `parts` (tableCanonicalParts of the same table) avoids serialising the routes twice. Pure.
 */
export function tableDigest(
  table: Pick<ZoneTable, 'zone' | 'egresses' | 'routes' | 'meshes'>,
  parts: TableCanonicalParts = tableCanonicalParts(table),
): string {
  // canonicalJson({zone, egresses, routes, meshes}) assembled from the parts: keys in bytewise order.
  const meshes = parts.meshes === undefined ? '' : `"meshes":${parts.meshes},`
  const body = `{"egresses":${parts.egresses},${meshes}"routes":${parts.routes},"zone":${JSON.stringify(table.zone)}}`
  return `sha256:${createHash('sha256').update(body).digest('hex')}`
}

/**
 * `tableDigest` from the canonical JSON of the routes without its brackets, as UTF-8 bytes or text (`[` + `routes`
 * + `]` is `canonicalJson(table.routes)`), hashed where it is instead of being joined into one string first.
 * Equal to `tableDigest(table)` (tested). Pure.
 */
export function tableDigestOfRoutes(
  table: Pick<ZoneTable, 'zone' | 'egresses' | 'meshes'>,
  routes: string | Uint8Array,
  egresses: string = canonicalJson(table.egresses),
): string {
  const meshes = table.meshes === undefined ? '' : `"meshes":${canonicalJson(table.meshes)},`
  return `sha256:${createHash('sha256')
    .update(`{"egresses":${egresses},${meshes}"routes":[`)
    .update(routes)
    .update(`],"zone":${JSON.stringify(table.zone)}}`)
    .digest('hex')}`
}
