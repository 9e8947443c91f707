import { canonicalJson, tableDigestOfRoutes } from '../../schemas/digest.js'
import { verifyTableSignature } from '../../schemas/signing.js'
import type { TableRoute, ZoneTable } from '../../schemas/table.js'
import { decodeTableBody, type TableHead } from '../../schemas/table-transport.js'
import { checkRoutes } from '../../schemas/zone-route-shape.js'
import { validateZoneTableShape } from '../../schemas/zone-table-shape.js'
import {
  type CompactRoutes,
  CompactZoneTable,
  compactFromCanonical,
  compactRoutes,
  hasClientKeys,
  type TableMeta,
} from './compact-table.js'
import { lowerAscii, type TableRejection, validateTableEnvelope } from './routing-table.js'

/**
 * Admission of a table received by an egress, everything but the generation rule (which needs the served table):
 * decode (a large table's body: size, sha256, gunzip within the announced size, envelope equal to the head), JSON,
 * schema, zone, unique SNIs, digest, signature by one of `trustedKeys` (when given); then the routes in compact
 * form. It runs in the admission worker thread
 * (egress/transport/admission-worker.ts), so a 100,000-route table is parsed and checked off the event loop, and
 * only the compact result is handed back. Pure (hashing and zlib only); never throws.
 */
export type AdmissionInput =
  /**
   * The envelope's JSON: a KV value (`from: 'kv'`: a value that is not JSON is checked as the string it is, and
   * refused as `invalid`) or the state file (`from: 'file'`: `load-failed`).
   */
  | { kind: 'json'; from: 'kv' | 'file'; bytes: Uint8Array; zone?: string; trustedKeys?: readonly string[] }
  /** A large table: the head from KV and the body fetched from the object store. */
  | { kind: 'body'; head: TableHead; bytes: Uint8Array; zone?: string; trustedKeys?: readonly string[] }

/** Milliseconds spent in each stage of an admitted table (for logs and the benchmark). */
export interface AdmissionPhases {
  /** Body: sha256, gunzip, JSON.parse, head comparison; inline: UTF-8 decode and JSON.parse. */
  decode: number
  /** Schema (ajv for the envelope without its routes, zone-route-shape.ts for the routes), zone, unique SNIs. */
  check: number
  /** Canonical JSON of every route, and the compact form built from it. */
  compact: number
  /** sha256 of the canonical content against `digest`, and the signature when trusted keys are given. */
  digest: number
}

export type AdmissionOutput =
  /** `checkedWith`: the trusted keys the signature was checked with (none: not checked). */
  | { ok: true; meta: TableMeta; compact: CompactRoutes; checkedWith: readonly string[] }
  | {
      ok: false
      /** `body`: the fetched body does not match its head (the egress reports `body-mismatch`). */
      stage: 'json' | 'body' | 'envelope'
      reason: TableRejection | 'body-mismatch' | 'load-failed'
      problems: string[]
      generation?: number
      digest?: string
      revision?: string
      /** Stage `json`: where in the file the JSON parser stopped, when it says (1-based). */
      at?: { line: number; column: number }
    }

const decoder = new TextDecoder('utf-8', { fatal: false })

/** Admits `input`; with `phases`, fills it with the time of each stage (when the table is admitted). */
export function admit(input: AdmissionInput, phases?: Partial<AdmissionPhases>): AdmissionOutput {
  const t0 = performance.now()
  let value: unknown
  if (input.kind === 'body') {
    const decoded = decodeTableBody(input.head, input.bytes)
    if (!decoded.ok) return { ok: false, stage: 'body', reason: 'body-mismatch', problems: decoded.problems }
    value = decoded.envelope
  } else {
    const text = decoder.decode(input.bytes)
    try {
      value = JSON.parse(text)
    } catch (err) {
      if (input.from === 'kv') value = text
      else {
        const message = (err as Error).message
        const at = jsonErrorAt(text, message)
        return {
          ok: false,
          stage: 'json',
          reason: 'load-failed',
          problems: [`not JSON: ${message}`],
          ...(at ? { at } : {}),
        }
      }
    }
  }
  const trustedKeys = input.trustedKeys ?? []
  const decode = performance.now() - t0
  const fast = admitChecked(value, input.zone, trustedKeys)
  if (fast) {
    if (phases) Object.assign(phases, fast.phases, { decode })
    const { routes: _routes, ...meta } = fast.table
    return { ok: true, meta, compact: fast.compact, checkedWith: [...trustedKeys] }
  }
  // Refused (or not decided by the fast path): the generic checks say why, with ajv's paths and messages.
  const check = validateTableEnvelope(value, input.zone, trustedKeys)
  if (!check.ok) {
    const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
    return {
      ok: false,
      stage: 'envelope',
      reason: check.reason,
      problems: check.problems,
      ...(typeof v.generation === 'number' ? { generation: v.generation } : {}),
      ...(typeof v.digest === 'string' ? { digest: v.digest } : {}),
      ...(typeof v.revision === 'string' ? { revision: v.revision } : {}),
    }
  }
  const { routes, ...meta } = check.table
  return { ok: true, meta, compact: compactRoutes(routes), checkedWith: [...trustedKeys] }
}

/** Line and column (1-based, the column in UTF-16 code units) of the character at `offset` in `text`. Pure. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const end = Math.max(0, Math.min(offset, text.length))
  let line = 1
  let start = 0
  for (let i = text.indexOf('\n'); i !== -1 && i < end; i = text.indexOf('\n', i + 1)) {
    line++
    start = i + 1
  }
  return { line, column: end - start + 1 }
}

/**
 * Where `JSON.parse(text)` stopped, from its error `message` (V8 writes `at position N` for most errors; Node 22
 * adds `(line L column C)`), or undefined when the message does not say (`Unexpected end of JSON input`, and on
 * Node 20 an unexpected token, whose message quotes the text around it instead). Pure.
 */
export function jsonErrorAt(text: string, message: string): { line: number; column: number } | undefined {
  const m = /at position (\d+)/.exec(message)
  return m ? lineColumn(text, Number(m[1])) : undefined
}

/**
 * The one-line problem of a file (the `--static` table, the `--state-dir` table) the admission refused as not
 * JSON: `FILE:LINE:COLUMN: not JSON: …` when the parser says where, else `FILE: …`. Pure.
 */
export function fileProblem(file: string, out: AdmissionOutput): string {
  if (out.ok) return `${file}: admitted`
  return `${file}${out.at ? `:${out.at.line}:${out.at.column}` : ''}: ${out.problems[0] ?? out.reason}`
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * The checks of `validateTableEnvelope` (schema, zone, unique SNIs, digest, signature), in the same order, for a
 * table that passes them all, written for a large table (docs/decisions/012-off-loop-admission.md):
 * - the routes are checked by schemas/zone-route-shape.ts instead of ajv (the rest of the envelope still by ajv),
 *   which also tells whether every member is in sorted order, as the reconciler writes them;
 * - the routes' canonical JSON is then `JSON.stringify(routes)` (else `canonicalJson`), serialised once: it is
 *   what the digest (and the signature) is computed over, and, as it is, the compact routes' JSON.
 * Returns undefined as soon as a check fails: the caller then runs `validateTableEnvelope`, which says why.
 * Whatever this admits, `validateTableEnvelope` admits with the same content (tested). Pure.
 */
export function admitChecked(
  value: unknown,
  zone: string | undefined,
  trustedKeys: readonly string[],
): { table: ZoneTable; compact: CompactRoutes; phases: Omit<AdmissionPhases, 'decode'> } | undefined {
  const t0 = performance.now()
  if (!isObject(value) || !Array.isArray(value.routes)) return undefined
  if (validateZoneTableShape({ ...value, routes: [] }).length > 0) return undefined
  const routes = value.routes as TableRoute[]
  const shape = checkRoutes(routes)
  if (shape === 'invalid') return undefined
  const table = value as unknown as ZoneTable
  if (zone !== undefined && table.zone !== zone) return undefined
  const n = routes.length
  const keys: string[] = new Array(n)
  const seen = new Set<string>()
  for (let i = 0; i < n; i++) {
    const k = lowerAscii(routes[i]!.sni)
    if (seen.has(k)) return undefined
    seen.add(k)
    keys[i] = k
  }
  const t1 = performance.now()
  // members in sorted order (and nothing but JSON values): JSON.stringify writes the canonical JSON
  const routesJson = shape === 'sorted' ? JSON.stringify(routes) : canonicalJson(routes)
  const compact = compactFromCanonical(keys, routesJson, hasClientKeys(routes))
  if (!compact) return undefined
  const t2 = performance.now()
  const egresses = canonicalJson(table.egresses)
  if (tableDigestOfRoutes(table, compact.json, egresses) !== table.digest) return undefined
  if (trustedKeys.length > 0) {
    const parts = {
      egresses,
      routes: routesJson,
      ...(table.meshes === undefined ? {} : { meshes: canonicalJson(table.meshes) }),
    }
    if (!verifyTableSignature(table, trustedKeys, parts).ok) return undefined
  }
  const t3 = performance.now()
  return { table, compact, phases: { check: t1 - t0, compact: t2 - t1, digest: t3 - t2 } }
}

/** What a refused admission tells the lifecycle (the machine records and reports it like its own rejections). */
export interface AdmissionRejection {
  reason: TableRejection | 'load-failed'
  problems: string[]
  generation?: number
  digest?: string
  revision?: string
}

/** A table the admission refused, as handed to the lifecycle in place of the table. */
export class RejectedTable {
  constructor(readonly rejection: AdmissionRejection) {}
}

/**
 * The value the lifecycle receives for an admission's envelope-level outcome: the admitted table (compact), or
 * the rejection. Body mismatches are not turned into a value (the transport reports them, decision 008). Pure.
 */
export function admittedValue(out: AdmissionOutput): CompactZoneTable | RejectedTable {
  if (out.ok) return new CompactZoneTable(out.meta, out.compact, out.checkedWith)
  const { ok: _ok, stage: _stage, reason, ...rest } = out
  return new RejectedTable({ reason: reason === 'body-mismatch' ? 'invalid' : reason, ...rest })
}
