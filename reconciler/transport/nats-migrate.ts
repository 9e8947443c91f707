import { Bucket, EVENTS_STREAM, TABLE_BODIES_BUCKET } from '../../schemas/subjects.js'
import type { Bus } from './nats-bus.js'
import { isStreamNotFound } from './nats-errors.js'

/**
 * `zonegate nats migrate`: changes the replica count of every stream of zonegate's NATS layout that exists
 * (the KV buckets' `KV_<bucket>` streams, the object store's `OBJ_<bucket>` and ZONEGATE_EVENTS). nats-server
 * 2.9 scales a stream's replicas in place with a stream update (the data is copied to the new peers by
 * the stream's Raft group); nothing is recreated and no key is lost.
 */

/** Streams of the layout, in the order they are migrated. Pure. */
export function layoutStreams(): string[] {
  return [...Object.values(Bucket).map((b) => `KV_${b}`), `OBJ_${TABLE_BODIES_BUCKET}`, EVENTS_STREAM]
}

export interface MigrateResult {
  changed: { stream: string; from: number; to: number }[]
  unchanged: string[]
  /** Streams of the layout that do not exist (yet): nothing to do. */
  missing: string[]
}

/**
 * Sets `num_replicas = replicas` on every existing stream of the layout that has another count. Rejects with
 * the server's error (for example "insufficient resources" when the cluster has fewer nodes than `replicas`);
 * streams migrated before the failing one stay migrated, and running the command again continues.
 */
export async function migrateReplicas(bus: Bus, replicas: number): Promise<MigrateResult> {
  const out: MigrateResult = { changed: [], unchanged: [], missing: [] }
  for (const stream of layoutStreams()) {
    let have: number
    try {
      have = (await bus.jsm.streams.info(stream)).config.num_replicas || 1
    } catch (err) {
      if (isStreamNotFound(err)) {
        out.missing.push(stream)
        continue
      }
      throw err
    }
    if (have === replicas) {
      out.unchanged.push(stream)
      continue
    }
    try {
      await bus.jsm.streams.update(stream, { num_replicas: replicas })
    } catch (err) {
      throw new Error(`${stream}: replicas ${have} → ${replicas} refused: ${(err as Error).message}`, { cause: err })
    }
    out.changed.push({ stream, from: have, to: replicas })
  }
  return out
}
