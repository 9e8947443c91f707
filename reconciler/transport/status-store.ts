import type { InstanceHeartbeat } from '../../schemas/events.js'
import { decodeHeartbeat } from '../../schemas/messages.js'
import type { ReconcilerStatus } from '../../schemas/status.js'
import { decodeToken, STATUS_KEY, zoneOfToken } from '../../schemas/subjects.js'
import { PublishFailed } from '../core/errors.js'
import type { Bus } from './nats-bus.js'

/**
 * The reconciler status in KV `zonegate-status`, key `reconciler`: written by the active reconciler at the end
 * of every pass, read by `zonegate status` and by a reconciler that takes over (to keep condition times).
 */

/** A status read back with its KV revision. */
export interface StoredStatus {
  status: ReconcilerStatus
  kvRevision: number
}

/**
 * Writes the status (plain put: the lease decides who writes, and the last writer wins). Resolves to the KV
 * revision. Throws PublishFailed (transient) when NATS fails.
 */
export async function writeStatus(bus: Bus, status: ReconcilerStatus): Promise<number> {
  try {
    return await bus.kv.status.put(STATUS_KEY, JSON.stringify(status))
  } catch (err) {
    throw new PublishFailed(`zonegate-status/${STATUS_KEY}`, err instanceof Error ? err.message : String(err), {
      cause: err,
    })
  }
}

/**
 * Reads the last status, or null when none was written (or it was deleted). Rejects with the client's error
 * when NATS fails or the bucket is missing, and a SyntaxError when the stored value is not JSON.
 */
export async function readStatus(bus: Bus): Promise<StoredStatus | null> {
  const entry = await bus.kv.status.get(STATUS_KEY)
  if (entry?.operation !== 'PUT') return null
  return { status: entry.json<ReconcilerStatus>(), kvRevision: entry.revision }
}

/** One live egress instance as read from KV `zonegate-instances` (key decoded). */
export interface InstanceRecord {
  zone: string
  egress: string
  instance: string
  /** KV revision of the heartbeat. */
  kvRevision: number
  heartbeat: InstanceHeartbeat
}

/**
 * Lists the live instances: every `<zone>.<egress>.<instance>` key of KV `zonegate-instances` (entries age out
 * with the bucket TTL, 30 s, so what is there heartbeated recently). Malformed keys/values are skipped.
 * Rejects with the client's error when NATS fails.
 */
export async function readInstances(bus: Bus): Promise<InstanceRecord[]> {
  const keys: string[] = []
  for await (const k of await bus.kv.instances.keys()) keys.push(k)
  const entries = await Promise.all(keys.map((k) => bus.kv.instances.get(k)))
  const out: InstanceRecord[] = []
  for (const e of entries) {
    if (e?.operation !== 'PUT') continue
    const parts = e.key.split('.')
    if (parts.length !== 3) continue
    const [zone, egress, instance] = parts as [string, string, string]
    const decoded = decodeHeartbeat(e.value)
    if (!decoded.ok) {
      bus.log.debug({ zone, problem: decoded.problem }, 'invalid heartbeat ignored')
      continue
    }
    out.push({
      zone: zoneOfToken(zone),
      egress: decodeToken(egress),
      instance: decodeToken(instance),
      kvRevision: e.revision,
      heartbeat: decoded.value,
    })
  }
  return out
}
