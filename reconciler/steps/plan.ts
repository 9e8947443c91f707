import { signTable, type TableSigner } from '../../schemas/signing.js'
import type { PublishedZoneTable, ZoneTable } from '../../schemas/table.js'
import type { Inventory } from '../pass-state.js'

/**
 * The diff step: what each zone last received (the inventory) against the compiled tables of a revision.
 * Comparison is by digest (canonical JSON of zone + egresses + routes), so an unchanged zone is never
 * republished and a restarted reconciler republishes nothing. Pure.
 */
export type ZoneChange =
  | {
      zone: string
      change: 'added' | 'changed'
      /** The envelope to write: generation = previous + 1, revision set. */
      table: PublishedZoneTable
      /** CAS: the KV revision the key must have (0 = must not exist). */
      expectedKvRevision: number
      previousRoutes: number
      /**
       * `tableEnvelopeJson(table)`, the bytes the publisher writes, when the diff step serialised the table to
       * measure it (handed to the publisher, so a table is serialised once per pass).
       */
      json?: string
      /** Why the zone is written (logged by the publish step, issue #12). */
      why: ZoneWriteReason
    }
  | { zone: string; change: 'removed'; expectedKvRevision: number; previousGeneration: number; previousRoutes: number }

/**
 * Why a zone is written: absent from the inventory (`missing`), another digest than the inventory's (`digest`),
 * or the same digest signed by another key or unsigned (`signature`); with what the inventory held for it.
 */
export interface ZoneWriteReason {
  reason: 'missing' | 'digest' | 'signature'
  inventory?: { digest: string; generation: number; revision: string; kvRevision: number }
  /** The last generation this reconciler wrote or removed for the zone, if any. */
  lastGeneration?: number
}

/**
 * Plans the writes of a revision, sorted by zone. `lastGenerations` holds the last generation this reconciler
 * wrote or removed per zone, so a zone that comes back continues its generation instead of restarting at 1, and a
 * lower generation written into KV by somebody else does not pull the next one down. With a
 * `signer`, every written table is signed (schemas/signing.ts), and a zone whose last table is unsigned or
 * signed by another key is written again (new generation) even when its content is unchanged: turning signing
 * on, or rotating the key, re-signs every zone in one pass. Pure.
 */
export function planZoneChanges(
  inventory: Inventory,
  next: readonly ZoneTable[],
  revision: string,
  lastGenerations: ReadonlyMap<string, number> = new Map(),
  signer?: TableSigner,
): ZoneChange[] {
  const out: ZoneChange[] = []
  const seen = new Set<string>()
  for (const t of next) {
    seen.add(t.zone)
    const prev = inventory.get(t.zone)
    if (prev && prev.table.digest === t.digest && prev.table.signature?.key === signer?.publicKey) continue
    // The highest of what KV holds and what this reconciler last wrote itself: a table somebody else put in KV
    // with a lower generation must not make us publish a generation the egresses already passed.
    const previousGeneration = Math.max(prev?.table.generation ?? 0, lastGenerations.get(t.zone) ?? 0)
    const { generation: _g, revision: _r, signature: _s, ...body } = t
    const table: PublishedZoneTable = { ...body, generation: previousGeneration + 1, revision }
    const last = lastGenerations.get(t.zone)
    const why: ZoneWriteReason = {
      reason: !prev ? 'missing' : prev.table.digest !== t.digest ? 'digest' : 'signature',
      ...(prev
        ? {
            inventory: {
              digest: prev.table.digest,
              generation: prev.table.generation,
              revision: prev.table.revision,
              kvRevision: prev.kvRevision,
            },
          }
        : {}),
      ...(last === undefined ? {} : { lastGeneration: last }),
    }
    out.push({
      zone: t.zone,
      change: prev ? 'changed' : 'added',
      why,
      table: signer ? signTable(table, signer) : table,
      expectedKvRevision: prev?.kvRevision ?? 0,
      previousRoutes: prev?.table.routes.length ?? 0,
    })
  }
  for (const [zone, prev] of inventory) {
    if (seen.has(zone)) continue
    out.push({
      zone,
      change: 'removed',
      expectedKvRevision: prev.kvRevision,
      previousGeneration: prev.table.generation,
      previousRoutes: prev.table.routes.length,
    })
  }
  return out.sort((a, b) => (a.zone < b.zone ? -1 : a.zone > b.zone ? 1 : 0))
}

/**
 * Zones the plan would leave without any route although they had some: removed zones, and changed zones whose
 * new table has no route. These are refused unless `--allow-empty` (the accidental mass prune). Pure.
 */
export function emptiedZones(plan: readonly ZoneChange[]): { zone: string; routes: number }[] {
  return plan
    .filter((c) => c.previousRoutes > 0 && (c.change === 'removed' || c.table.routes.length === 0))
    .map((c) => ({ zone: c.zone, routes: c.previousRoutes }))
}
