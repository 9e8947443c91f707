import { createHash } from 'node:crypto'
import type { ZoneTable } from './table.js'

/**
 * Canonical JSON: object keys sorted bytewise (UTF-16 code unit order, as `Array.prototype.sort`), no
 * whitespace, `undefined` members dropped, arrays in their given order. Equal values give equal strings.
 * Pure.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (value === undefined) return 'null'
    return JSON.stringify(value)
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`
  const obj = value as Record<string, unknown>
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`
}

/**
 * `sha256:<hex>` of the canonical JSON of `{zone, egresses, routes}` plus `meshes` when the table has them
 * (DESIGN.md §3): a CA change republishes the zone. A table without `meshes` hashes exactly as before. Pure.
 */
export function tableDigest(table: Pick<ZoneTable, 'zone' | 'egresses' | 'routes' | 'meshes'>): string {
  const body = canonicalJson({ zone: table.zone, egresses: table.egresses, routes: table.routes, meshes: table.meshes })
  return `sha256:${createHash('sha256').update(body).digest('hex')}`
}
