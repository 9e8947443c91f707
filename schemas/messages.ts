import type { InstanceHeartbeat, ReconcileReply, ZonegateEvent } from './events.js'
import { natsMessageValidator, schemaProblems } from './validators.js'

/**
 * Every NATS payload a zonegate process consumes goes through one of these before use (table envelopes have
 * their own admission, egress/core/routing-table.ts; certificate requests reconciler/core/cert-service.ts):
 * bounded size, JSON, then the definition of schemas/nats-messages.schema.json for its kind. A payload that fails
 * is dropped by the caller with a debug/warn line — never a crash, never a partial use. Pure; never throws.
 */

/** Largest payload parsed (nats-server's default max_payload; events and heartbeats are a few hundred bytes). */
export const MAX_MESSAGE_BYTES = 1024 * 1024

export type Decoded<T> = { ok: true; value: T } | { ok: false; problem: string }

const EVENT_TYPES = new Set([
  'commit.fetched',
  'commit.invalid',
  'commit.published',
  'commit.superseded',
  'commit.converged',
  'commit.stalled',
  'rollout.published',
  'rollout.converged',
  'rollout.timeout',
  'rollout.applied',
  'rollout.rejected',
])

/** Size, JSON and (when `definition`) the schema definition; `value` may be a parsed value or raw bytes/text. */
function decode<T>(definition: string | ((v: unknown) => string | undefined), data: unknown): Decoded<T> {
  let value = data
  if (typeof data === 'string' || data instanceof Uint8Array) {
    const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
    if (bytes > MAX_MESSAGE_BYTES)
      return { ok: false, problem: `payload of ${bytes} bytes (limit ${MAX_MESSAGE_BYTES})` }
    try {
      value = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data))
    } catch {
      return { ok: false, problem: 'payload is not JSON' }
    }
  }
  const def = typeof definition === 'string' ? definition : definition(value)
  if (def === undefined) return { ok: false, problem: 'unknown message type' }
  const validate = natsMessageValidator(def)
  if (!validate) return { ok: false, problem: `no schema for ${def}` }
  if (!validate(value)) {
    const first = schemaProblems(validate.errors).slice(0, 3)
    return { ok: false, problem: `not a valid ${def}: ${first.map((p) => `${p.path || '/'} ${p.message}`).join('; ')}` }
  }
  return { ok: true, value: value as T }
}

const eventType = (v: unknown): string | undefined => {
  const t = (v as { type?: unknown } | null)?.type
  return typeof t === 'string' && EVENT_TYPES.has(t) ? t : undefined
}

/** An event from stream ZONEGATE_EVENTS (any commit or rollout event), checked against its type's schema. */
export function decodeEvent(data: unknown): Decoded<ZonegateEvent> {
  return decode(eventType, data)
}

/**
 * One stream message payload as an event, or undefined when it is not an event of a known type with the shape of
 * schemas/nats-messages.schema.json (the rollout watch, `zonegate events` and the status page skip such
 * messages). Pure.
 */
export function parseEvent(text: string): ZonegateEvent | undefined {
  const decoded = decodeEvent(text)
  return decoded.ok ? decoded.value : undefined
}

/** A heartbeat value of KV `zonegate-instances`. */
export function decodeHeartbeat(data: unknown): Decoded<InstanceHeartbeat> {
  return decode('heartbeat', data)
}

/** A `zonegate.cmd.reconcile` request: empty, or `{requestedAt?}`. */
export function decodeReconcileRequest(data: Uint8Array | string): Decoded<{ requestedAt?: string }> {
  const empty = typeof data === 'string' ? data.trim() === '' : data.byteLength === 0
  if (empty) return { ok: true, value: {} }
  return decode('reconcileRequest', data)
}

/** A reply to `zonegate.cmd.reconcile`. */
export function decodeReconcileReply(data: unknown): Decoded<ReconcileReply> {
  return decode('reconcileReply', data)
}
