import { decodeTableBody, type TableHead } from '../../schemas/table-transport.js'
import { type CompactRoutes, CompactZoneTable, compactRoutes, type TableMeta } from './compact-table.js'
import { type TableRejection, validateTableEnvelope } from './routing-table.js'

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
    }

const decoder = new TextDecoder('utf-8', { fatal: false })

export function admit(input: AdmissionInput): AdmissionOutput {
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
      else return { ok: false, stage: 'json', reason: 'load-failed', problems: [`not JSON: ${(err as Error).message}`] }
    }
  }
  const trustedKeys = input.trustedKeys ?? []
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
