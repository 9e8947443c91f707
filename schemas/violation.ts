import type { Kind } from './resources.js'

/**
 * One problem found in a snapshot, pointing at the file, line and column of the offending field.
 * `file` is relative to the snapshot root, `line`/`column` are 1-based, `path` is Kuma's dotted form
 * (`networking.port`, `mtls.backends[0].name`, `tags["kuma.io/service"]`); `''` means the document itself.
 * `rule` is a stable id: an ajv keyword (`schema.type`) or one of ours (`mesh.zone-egress-requires-mtls`).
 */
export interface Violation {
  file: string
  line: number
  column: number
  /** The resource kind as written (`Mesh`), or `''` when the document has no usable type (YAML errors). */
  kind: Kind | string
  /** The resource name, or `''` when unknown. */
  name: string
  path: string
  rule: string
  message: string
}

/** Same shape as a violation; warnings never make a snapshot invalid. */
export type Warning = Violation

/** Orders violations by file, line, column, then path and message (deterministic output). */
export function compareViolations(a: Violation, b: Violation): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1
  if (a.line !== b.line) return a.line - b.line
  if (a.column !== b.column) return a.column - b.column
  if (a.path !== b.path) return a.path < b.path ? -1 : 1
  return a.message < b.message ? -1 : a.message > b.message ? 1 : 0
}

/** `meshes/default.yaml:12:7 Mesh/default mtls: has to be set when zoneEgress enabled` */
export function formatViolation(v: Violation): string {
  const who = v.kind ? `${v.kind}/${v.name || '?'} ` : ''
  const where = v.path ? `${v.path}: ` : ''
  return `${v.file}:${v.line}:${v.column} ${who}${where}${v.message}`
}
