import { createHash } from 'node:crypto'
import { gunzipSync, gzipSync } from 'node:zlib'
import { canonicalJson } from './digest.js'
import { TABLE_API_VERSION, type TableSignature, type ZoneTable } from './table.js'

/**
 * How a zone's table travels on NATS (docs/decisions/008-large-tables-object-store.md).
 *
 * - A table whose JSON fits one NATS message is the KV value of `<zone>.table` itself (the envelope), as before.
 * - A larger table is gzip-compressed and stored in the JetStream object store `zonegate-table-bodies`
 *   (object `<zone>.table.<generation>`); the KV key then holds a small **head** (`kind: ZoneEgressTableRef`) that
 *   names the object, its sha256 and sizes, and repeats the envelope's zone, generation, revision and digest.
 *   The object is written before the head, so a head never names a missing body.
 * - An egress that does not know heads rejects one as an invalid table (its `kind` is not `ZoneEgressTable`) and
 *   keeps serving; a current egress fetches the body, checks its sha256, size and that the envelope inside
 *   matches the head, and then admits the envelope like any other (shape, digest, signature, generation).
 * Pure functions (hashing and zlib only).
 */

export const TABLE_HEAD_KIND = 'ZoneEgressTableRef'
export const TABLE_BODY_ENCODING = 'gzip'
/** Largest uncompressed table accepted anywhere (publish and fetch): bounds memory on both sides. */
export const MAX_TABLE_BODY_BYTES = 256 * 1024 * 1024
/** Bytes kept free in a NATS message for headers when deciding whether a table fits inline. */
export const INLINE_HEADER_MARGIN = 512

export interface TableHeadObject {
  bucket: string
  name: string
  encoding: typeof TABLE_BODY_ENCODING
  /** Bytes of the envelope's JSON (uncompressed). */
  size: number
  /** Bytes stored (compressed). */
  storedSize: number
  /** `sha256:<hex>` of the stored (compressed) bytes. */
  sha256: string
}

/** The KV value of `<zone>.table` when the table lives in the object store. */
export interface TableHead {
  apiVersion: typeof TABLE_API_VERSION
  kind: typeof TABLE_HEAD_KIND
  zone: string
  generation: number
  revision: string
  digest: string
  object: TableHeadObject
  /** The reconciler's signature of the head (schemas/signing.ts); absent when it runs without a signing key. */
  signature?: TableSignature
}

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** True when the KV value must go to the object store: its bytes (plus headers) exceed `maxPayload`. Pure. */
export function needsObjectStore(jsonBytes: number, maxPayload: number | undefined): boolean {
  return maxPayload !== undefined && maxPayload > 0 && jsonBytes + INLINE_HEADER_MARGIN > maxPayload
}

/**
 * Compresses an envelope's JSON into the stored body and builds the head naming it. `envelope` is the parsed
 * form of `json` (zone, generation, revision, digest are copied into the head). Pure.
 */
export function encodeTableBody(
  json: string,
  envelope: { zone: string; generation: number; revision: string; digest: string },
  object: { bucket: string; name: string },
): { body: Uint8Array; head: TableHead } {
  const raw = Buffer.from(json, 'utf8')
  // level 1: 3–4× faster than 6 on a 100,000-route table for ~10 % more bytes (1.02 vs 0.93 MB); it is on the
  // path from commit to applied, the bytes are not
  const body = gzipSync(raw, { level: 1 })
  return {
    body,
    head: {
      apiVersion: TABLE_API_VERSION,
      kind: TABLE_HEAD_KIND,
      zone: envelope.zone,
      generation: envelope.generation,
      revision: envelope.revision,
      digest: envelope.digest,
      object: {
        bucket: object.bucket,
        name: object.name,
        encoding: TABLE_BODY_ENCODING,
        size: raw.length,
        storedSize: body.length,
        sha256: sha256(body),
      },
    },
  }
}

/**
 * The envelope's JSON as the reconciler writes it (KV value or object store body): its members as
 * `JSON.stringify` writes them, then `routes` last as their canonical JSON (schemas/digest.ts: members in sorted
 * order). The same value as `JSON.stringify(table)`; an egress then finds the routes' members already in sorted
 * order and takes `JSON.stringify` of what it parsed as their canonical JSON, without sorting anything
 * (docs/decisions/012-off-loop-admission.md). Pure.
 */
export function tableEnvelopeJson(table: ZoneTable): string {
  const { routes, ...rest } = table
  const head = JSON.stringify(rest)
  const tail = `"routes":${canonicalJson(routes)}}`
  return head === '{}' ? `{${tail}` : `${head.slice(0, -1)},${tail}`
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isCount = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0

/** True when a KV value is a head (by `kind`), whether or not it is well formed. Pure. */
export function isTableHead(value: unknown): boolean {
  return isObj(value) && value.kind === TABLE_HEAD_KIND
}

/** Every problem of an untrusted head, as `<path>: <message>` (empty when valid). Pure; never throws. */
export function validateTableHead(value: unknown): string[] {
  if (!isObj(value)) return ['/: must be an object']
  const p: string[] = []
  if (value.apiVersion !== TABLE_API_VERSION) p.push(`/apiVersion: must be ${TABLE_API_VERSION}`)
  if (value.kind !== TABLE_HEAD_KIND) p.push(`/kind: must be ${TABLE_HEAD_KIND}`)
  if (typeof value.zone !== 'string' || value.zone === '') p.push('/zone: must be a non-empty string')
  if (!isCount(value.generation)) p.push('/generation: must be an integer ≥ 0')
  if (typeof value.revision !== 'string' || value.revision === '') p.push('/revision: must be a non-empty string')
  if (typeof value.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(value.digest))
    p.push('/digest: must be sha256:<64 hex>')
  const o = value.object
  if (!isObj(o)) return [...p, '/object: must be an object']
  if (typeof o.bucket !== 'string' || !/^[-\w]+$/.test(o.bucket)) p.push('/object/bucket: must be a bucket name')
  if (typeof o.name !== 'string' || o.name === '' || o.name.length > 512) p.push('/object/name: must be a name')
  if (o.encoding !== TABLE_BODY_ENCODING) p.push(`/object/encoding: must be ${TABLE_BODY_ENCODING}`)
  if (!isCount(o.size) || (o.size as number) > MAX_TABLE_BODY_BYTES)
    p.push(`/object/size: must be an integer from 0 to ${MAX_TABLE_BODY_BYTES}`)
  if (!isCount(o.storedSize) || (o.storedSize as number) > MAX_TABLE_BODY_BYTES)
    p.push(`/object/storedSize: must be an integer from 0 to ${MAX_TABLE_BODY_BYTES}`)
  if (typeof o.sha256 !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(o.sha256))
    p.push('/object/sha256: must be sha256:<64 hex>')
  const sig = value.signature
  if (sig !== undefined) {
    if (!isObj(sig) || sig.alg !== 'ed25519' || typeof sig.key !== 'string' || typeof sig.value !== 'string')
      p.push('/signature: must be {alg: ed25519, key, value}')
    else if (sig.key.length > 128 || sig.value.length > 256) p.push('/signature: key or value too long')
  }
  return p
}

export type BodyCheck = { ok: true; envelope: unknown } | { ok: false; problems: string[] }

/**
 * Turns fetched body bytes back into the envelope, checking, in order: the stored size and sha256 named by the
 * head, the uncompressed size (decompression stops at `head.object.size`, so a body cannot inflate past what
 * the head announced), JSON, and that the envelope's zone, generation, revision and digest equal the head's.
 * The envelope itself is still untrusted: the caller admits it like an inline table. Pure; never throws.
 */
export function decodeTableBody(head: TableHead, body: Uint8Array): BodyCheck {
  const o = head.object
  if (body.length !== o.storedSize)
    return { ok: false, problems: [`${o.name}: ${body.length} bytes stored, head says ${o.storedSize}`] }
  const got = sha256(body)
  if (got !== o.sha256) return { ok: false, problems: [`${o.name}: sha256 ${got} does not match head ${o.sha256}`] }
  let raw: Buffer
  try {
    raw = gunzipSync(body, { maxOutputLength: Math.max(1, o.size) })
  } catch (err) {
    return {
      ok: false,
      problems: [`${o.name}: not a ${o.encoding} body of ${o.size} bytes: ${(err as Error).message}`],
    }
  }
  if (raw.length !== o.size)
    return { ok: false, problems: [`${o.name}: ${raw.length} bytes uncompressed, head says ${o.size}`] }
  let envelope: unknown
  try {
    envelope = JSON.parse(raw.toString('utf8'))
  } catch (err) {
    return { ok: false, problems: [`${o.name}: not JSON: ${(err as Error).message}`] }
  }
  const e = isObj(envelope) ? envelope : {}
  const diffs = (['zone', 'generation', 'revision', 'digest'] as const)
    .filter((k) => e[k] !== head[k])
    .map((k) => `${o.name}: envelope ${k} ${JSON.stringify(e[k])} differs from head ${JSON.stringify(head[k])}`)
  if (diffs.length > 0) return { ok: false, problems: diffs }
  return { ok: true, envelope }
}
