import type { ZonegateEvent } from '../../schemas/events.js'
import { signTableHead, type TableSigner } from '../../schemas/signing.js'
import {
  Bucket,
  EVENTS_STREAM,
  TABLE_BODIES_BUCKET,
  TABLE_BODIES_KEPT,
  tableKey,
  tableObjectName,
  zoneOfToken,
} from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import {
  decodeTableBody,
  encodeTableBody,
  isTableHead,
  MAX_TABLE_BODY_BYTES,
  needsObjectStore,
  type TableHead,
  tableEnvelopeJson,
  validateTableHead,
} from '../../schemas/table-transport.js'
import { PublishConflict, PublishFailed, TableTooLarge } from '../core/errors.js'
import type { BuiltEvent } from '../core/events.js'
import type { CurrentTable } from '../pass-state.js'
import type { Bus } from './nats-bus.js'
import { isCasMismatch, isLayoutMissing } from './nats-errors.js'

/**
 * Writes of the reconciler to NATS: zone tables in KV `zonegate-tables` (key `<zone>.table`, CAS on the KV
 * revision) and events on stream ZONEGATE_EVENTS (`Nats-Msg-Id` dedupe). Every NATS failure becomes a
 * `PublishFailed` (transient, cause kept) and a CAS mismatch a `PublishConflict`.
 */

/** What a zone last received: its envelope and the KV revision to pass to the next CAS write. */
export interface PublishedEntry {
  table: PublishedZoneTable
  kvRevision: number
}

const TABLE_SUFFIX = '.table'

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err))

/**
 * Reads back every zone table currently in KV `zonegate-tables` (deleted keys excluded), keyed by zone: the
 * inventory a (re)started reconciler diffs against, so it republishes nothing that is already there.
 * Entries whose value is not a JSON envelope are skipped with a warning. Throws PublishFailed when NATS fails.
 *
 * Every read goes to the stream's leader: the subjects from stream info (with a subject filter), then the last
 * message of each with STREAM.MSG.GET (not a direct get), both answered only by the leader in a cluster. An ordered
 * consumer is placed by the server on any replica: on a 3-node 2.9.10 cluster, right after a node came back, 10–50 %
 * of the reads gave the last-written zone one write behind (the plan took it for changed: a CAS conflict, a failed
 * pass, a new read), and while a node was down about a third of the reads timed out (the consumer placed on the
 * dead node: a failed pass). test/faults/inventory.test.ts. One request per zone, a few at a time.
 */
export async function readPublishedTables(bus: Bus): Promise<Map<string, PublishedEntry>> {
  const out = new Map<string, PublishedEntry>()
  const stream = `KV_${Bucket.Tables}`
  const prefix = `$KV.${Bucket.Tables}.`
  const filter = `${prefix}*${TABLE_SUFFIX}`
  try {
    const info = await bus.jsm.streams.info(stream, { subjects_filter: filter })
    const subjects = Object.keys(info.state.subjects ?? {}).sort()
    const heads: { zone: string; head: unknown; kvRevision: number }[] = []
    for (let i = 0; i < subjects.length; i += INVENTORY_READS_AT_ONCE) {
      const batch = subjects.slice(i, i + INVENTORY_READS_AT_ONCE)
      const msgs = await Promise.all(batch.map((subj) => bus.jsm.streams.getMessage(stream, { last_by_subj: subj })))
      for (const [j, m] of msgs.entries()) {
        const zone = zoneOfToken(batch[j]!.slice(prefix.length, -TABLE_SUFFIX.length))
        if (m === null) continue // purged since the stream info
        const op = m.header?.get('KV-Operation')
        if (op === 'DEL' || op === 'PURGE') continue
        try {
          const value = m.json<unknown>()
          if (isTableHead(value)) heads.push({ zone, head: value, kvRevision: m.seq })
          else out.set(zone, { table: inventoryTable(zone, value, bus), kvRevision: m.seq })
        } catch (err) {
          bus.log.warn({ zone, err }, 'unreadable table in KV; it will be rewritten')
          out.set(zone, { table: inventoryTable(zone, undefined, bus), kvRevision: m.seq })
        }
      }
    }
    // Large tables: the KV value is a head; the inventory needs the envelope (routes), read from the object store.
    for (const h of heads) {
      const table = await readTableBody(bus, h.head)
      if (!table) bus.log.warn({ zone: h.zone }, 'table head whose body is unreadable; it will be rewritten')
      out.set(h.zone, { table: inventoryTable(h.zone, table ?? h.head, bus), kvRevision: h.kvRevision })
    }
    // who answered and what it held (issue #12): the stream's leader, its last sequence, each zone's generation@seq
    const zones =
      out.size <= INVENTORY_LOGGED_ZONES
        ? Object.fromEntries([...out].map(([z, e]) => [z, `${e.table.generation}@${e.kvRevision}`]))
        : undefined
    bus.log.info(
      { leader: info.cluster?.leader, lastSeq: info.state.last_seq, count: out.size, ...(zones ? { zones } : {}) },
      'inventory read',
    )
  } catch (err) {
    throw new PublishFailed(Bucket.Tables, `reading published tables: ${messageOf(err)}`, { cause: err })
  }
  return out
}

/** Up to this many zones, the inventory's log line lists each zone's generation and KV revision. */
const INVENTORY_LOGGED_ZONES = 32

/**
 * The last value of a zone's key, read from the stream's leader (STREAM.MSG.GET, like the inventory): undefined
 * when the key has none or was deleted. Throws PublishFailed when NATS fails.
 */
async function lastTableMessage(bus: Bus, key: string): Promise<{ seq: number; value: string } | undefined> {
  const stream = `KV_${Bucket.Tables}`
  try {
    const m = await bus.jsm.streams.getMessage(stream, { last_by_subj: `$KV.${Bucket.Tables}.${key}` })
    if (m === null) return undefined
    const op = m.header?.get('KV-Operation')
    if (op === 'DEL' || op === 'PURGE') return undefined
    return { seq: m.seq, value: m.string() }
  } catch (err) {
    throw new PublishFailed(`${Bucket.Tables}/${key}`, `reading the current table: ${messageOf(err)}`, { cause: err })
  }
}

/**
 * What a zone's key holds now, from the stream's leader (issue #12): generation, revision, digest and signature of
 * the envelope or large-table head, and its KV revision; undefined when the key has no table (absent, deleted).
 * A value that is not JSON, or lacks those fields, comes back with digest `invalid`, so it never matches a table.
 * Throws PublishFailed when NATS fails.
 */
export async function readCurrentTable(bus: Bus, zone: string): Promise<CurrentTable | undefined> {
  const last = await lastTableMessage(bus, tableKey(zone))
  if (!last) return undefined
  let v: Record<string, unknown> = {}
  try {
    const parsed = JSON.parse(last.value) as unknown
    if (typeof parsed === 'object' && parsed !== null) v = parsed as Record<string, unknown>
  } catch {
    // not JSON: digest `invalid` below
  }
  const g = v.generation
  const sig = v.signature
  return {
    generation: typeof g === 'number' && Number.isSafeInteger(g) && g >= 0 ? g : 0,
    revision: typeof v.revision === 'string' ? v.revision : 'invalid',
    digest: typeof v.digest === 'string' ? v.digest : 'invalid',
    ...(typeof sig === 'object' && sig !== null && !Array.isArray(sig)
      ? { signature: sig as NonNullable<CurrentTable['signature']> }
      : {}),
    kvRevision: last.seq,
  }
}

/** Last-message reads of the inventory in flight at once. */
const INVENTORY_READS_AT_ONCE = 16

/**
 * The inventory entry of a KV value: the envelope when it has what the plan and the status read (zone,
 * integer generation, revision and digest strings, egress and route lists, a signature object if any);
 * otherwise (a value somebody else wrote, or a corrupt one) a placeholder with no routes and a digest no table
 * has, so the plan rewrites the key (CAS on its revision) with the real table at the next generation. The egress
 * checks the full schema, digest and signature of what it serves; this only keeps the reconciler from tripping
 * over a hostile value. Never throws.
 */
function inventoryTable(zone: string, value: unknown, bus: Bus): PublishedZoneTable {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
  const g = v.generation
  const generation = typeof g === 'number' && Number.isSafeInteger(g) && g >= 0 ? g : undefined
  const sig = v.signature
  const ok =
    v.kind === 'ZoneEgressTable' &&
    v.zone === zone &&
    generation !== undefined &&
    typeof v.revision === 'string' &&
    typeof v.digest === 'string' &&
    Array.isArray(v.egresses) &&
    Array.isArray(v.routes) &&
    (sig === undefined || (typeof sig === 'object' && sig !== null && !Array.isArray(sig)))
  if (ok) return value as PublishedZoneTable
  bus.log.warn({ zone }, 'table in KV is not a zonegate envelope; it will be rewritten')
  return {
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    zone,
    generation: generation ?? 0,
    revision: 'invalid',
    digest: 'invalid',
    egresses: [],
    routes: [],
  }
}

/**
 * Reads and checks the body a head names (schemas/table-transport.ts): undefined when the head is malformed,
 * the object is missing or the body does not match the head. Rejects when NATS fails.
 */
export async function readTableBody(bus: Bus, head: unknown): Promise<PublishedZoneTable | undefined> {
  if (validateTableHead(head).length > 0) return undefined
  const h = head as TableHead
  const bytes = await (await bus.tableBodies()).getBlob(h.object.name)
  if (!bytes) return undefined
  const decoded = decodeTableBody(h, bytes)
  return decoded.ok ? (decoded.envelope as PublishedZoneTable) : undefined
}

/**
 * Writes a zone's envelope to KV `zonegate-tables` key `<zone>.table` with CAS: `expectedKvRevision` 0 means
 * "the key must not exist" (`kv.create`, which also succeeds over a deleted key), otherwise `kv.update` with
 * that revision. Resolves to the new KV revision. An envelope too large for one NATS message (max_payload) is
 * stored gzip-compressed in the object store `zonegate-table-bodies` first, and the KV value is then a head
 * naming it (docs/decisions/008); bodies older than `TABLE_BODIES_KEPT` generations are deleted after the
 * write. With a `signer` the head is signed too (the envelope arrives signed by the plan). Throws TableTooLarge
 * (before any I/O) above `MAX_TABLE_BODY_BYTES`, PublishConflict when the key was written since (server error
 * "wrong last sequence"), PublishFailed for any other NATS failure. `envelopeJson`: `tableEnvelopeJson(table)`
 * when the caller already has it (the pass's diff step measures every changed table with it), so a large table is
 * not serialised twice; it must be exactly that string, which is what gets written.
 */
export async function publishZoneTable(
  bus: Bus,
  table: PublishedZoneTable,
  expectedKvRevision: number,
  signer?: TableSigner,
  envelopeJson?: string,
): Promise<number> {
  const key = tableKey(table.zone)
  let value = envelopeJson ?? tableEnvelopeJson(table)
  const bytes = Buffer.byteLength(value)
  if (bytes > MAX_TABLE_BODY_BYTES) throw new TableTooLarge(table.zone, bytes, MAX_TABLE_BODY_BYTES)
  const large = needsObjectStore(bytes, bus.nc.info?.max_payload)
  if (large) {
    const name = tableObjectName(table.zone, table.generation)
    const { body, head } = encodeTableBody(value, table, { bucket: TABLE_BODIES_BUCKET, name })
    try {
      await (await bus.tableBodies()).putBlob({ name, description: `${table.revision} ${table.digest}` }, body)
    } catch (err) {
      throw new PublishFailed(`${TABLE_BODIES_BUCKET}/${name}`, messageOf(err), { cause: err })
    }
    value = JSON.stringify(signer ? signTableHead(head, signer) : head)
  }
  const rev = await writeTableKey(bus, key, value, expectedKvRevision)
  if (large) await pruneTableBodies(bus, table.zone, table.generation)
  return rev
}

/**
 * Deletes the body of generation `generation - TABLE_BODIES_KEPT` of a zone, if any: bodies are written in
 * generation order, so deleting one per publish keeps at most `TABLE_BODIES_KEPT` per zone. Best effort (a
 * failure is logged; the body is deleted on a later publish or stays as harmless history).
 */
async function pruneTableBodies(bus: Bus, zone: string, generation: number): Promise<void> {
  const old = generation - TABLE_BODIES_KEPT
  if (old < 1) return
  try {
    const store = await bus.tableBodies()
    const name = tableObjectName(zone, old)
    if (await store.info(name)) await store.delete(name)
  } catch (err) {
    bus.log.debug({ zone, err }, 'old table body not pruned')
  }
}

/**
 * The CAS write of a zone's key. When it fails for another reason than the CAS or no responders (a timeout, the
 * connection lost, the stream leader gone), the write may still have landed, its reply lost: the key's last value
 * is read back from the stream leader (for up to READ_BACK_MS), and if it is exactly this value at a revision after
 * `expectedKvRevision`, that revision is the write's (logged), so a retry does not write the same table again
 * under the next generation (issue #12).
 * A write still in flight when the read-back looks is caught by the publish step's read before the next write.
 */
/** How long the read-back after a failed table write may take. */
const READ_BACK_MS = 1000

/** `p`'s value, or undefined when it rejects or takes longer than `ms`. */
async function withinMs<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), ms)
  })
  try {
    return await Promise.race([p.catch(() => undefined), late])
  } finally {
    clearTimeout(timer)
  }
}

async function writeTableKey(bus: Bus, key: string, value: string, expectedKvRevision: number): Promise<number> {
  try {
    return expectedKvRevision === 0
      ? await bus.kv.tables.create(key, value)
      : await bus.kv.tables.update(key, value, expectedKvRevision)
  } catch (err) {
    if (isCasMismatch(err)) throw new PublishConflict(key, expectedKvRevision, { cause: err })
    // no responders / no stream: nothing stored it. Otherwise the read-back is bounded (NATS down: the write's own
    // timeout was spent already; a write still in flight is caught by the publish step's read before the next one)
    const last = isLayoutMissing(err) ? undefined : await withinMs(lastTableMessage(bus, key), READ_BACK_MS)
    if (last && last.seq > expectedKvRevision && last.value === value) {
      bus.log.info(
        { key, kvRevision: last.seq, expectedKvRevision, err: messageOf(err) },
        'table write landed although its reply was lost',
      )
      return last.seq
    }
    throw new PublishFailed(`${Bucket.Tables}/${key}`, messageOf(err), { cause: err })
  }
}

/**
 * Removes a zone that vanished from the repository: a KV **delete** (soft delete, a `DEL` marker) of
 * `<zone>.table` guarded by `previousSeq = expectedKvRevision`, so history stays for audit and egress
 * watchers see a `DEL` operation. Throws PublishConflict when the key was written since, PublishFailed
 * otherwise. A later re-creation of the zone uses `publishZoneTable(bus, t, 0)`.
 */
export async function removeZoneTable(bus: Bus, zone: string, expectedKvRevision: number): Promise<void> {
  const key = tableKey(zone)
  try {
    await bus.kv.tables.delete(key, { previousSeq: expectedKvRevision })
  } catch (err) {
    if (isCasMismatch(err)) throw new PublishConflict(key, expectedKvRevision, { cause: err })
    throw new PublishFailed(`${Bucket.Tables}/${key}`, messageOf(err), { cause: err })
  }
}

/** Result of an event publish: the stream sequence and whether the server saw the msg id already. */
export interface EventAck {
  seq: number
  duplicate: boolean
}

/**
 * Publishes one event on stream ZONEGATE_EVENTS with header `Nats-Msg-Id: msgId`; a second publish with
 * the same id within the duplicate window (2 min) is acknowledged with `duplicate: true` and stored once.
 * Throws PublishFailed (transient) when the stream does not ack in time.
 */
export async function publishEvent(bus: Bus, subject: string, event: ZonegateEvent, msgId: string): Promise<EventAck> {
  try {
    const ack = await bus.js.publish(subject, JSON.stringify(event), { msgID: msgId })
    return { seq: ack.seq, duplicate: ack.duplicate }
  } catch (err) {
    throw new PublishFailed(`${EVENTS_STREAM}/${subject}`, messageOf(err), { cause: err })
  }
}

/** `publishEvent` for the output of a core/events.ts builder. */
export function emitEvent(bus: Bus, built: BuiltEvent): Promise<EventAck> {
  return publishEvent(bus, built.subject, built.payload, built.msgId)
}
