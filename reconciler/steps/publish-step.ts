import type { CommitPublishedEvent } from '../../schemas/events.js'
import { PublishFailed } from '../core/errors.js'
import { type BuiltEvent, commitPublication, commitPublishedEvent, rolloutPublishedEvent } from '../core/events.js'
import type { CurrentTable, Inventory, InventoryEntry, PassReport } from '../pass-state.js'
import { asReconcileError, emitAll, queueEvents } from './commit-events.js'
import type { ZoneChange } from './plan.js'
import type { PassContext, Step } from './types.js'

/**
 * Zones a previous attempt at this revision already wrote (issue #16.4): tables in the inventory carrying this
 * revision that the plan does not write again, because a reconciler killed mid-publish (or a pass that failed
 * midway) wrote them and no `commit.<sha>.published` followed. They belong to this commit's publication: their
 * `rollout.<zone>.published` events are sent (again: the msg id of a zone's event is per generation, so one the
 * previous holder did send is stored once) and they are listed in `commit.<sha>.published`. Pure.
 */
export function alreadyPublished(
  inventory: Inventory,
  plan: readonly ZoneChange[],
  revision: string,
): { zone: string; generation: number; digest: string; change: 'added' | 'changed' }[] {
  const planned = new Set(plan.map((c) => c.zone))
  return [...inventory.entries()]
    .filter(([zone, e]) => !planned.has(zone) && e.table.revision === revision)
    .map(([zone, e]) => ({
      zone,
      generation: e.table.generation,
      digest: e.table.digest,
      change: e.table.generation > 1 ? ('changed' as const) : ('added' as const),
    }))
}

/**
 * Publish: tells the trigger loop publishing starts (no supersede from here on), writes each changed zone with
 * CAS (generation = previous + 1), deletes removed zones, updates the inventory as each write lands, then emits
 * `rollout.<zone>.published` per zone and `commit.<sha>.published`. A new sha that changes nothing still gets
 * `commit.<sha>.published` with no zones. A revision found half-published (`alreadyPublished`) gets the events of
 * the zones written before as well. PublishFailed / PublishConflict on NATS errors: zones already written stay
 * written and their events stay queued for the retry.
 */
export async function publishStep(ctx: PassContext): Promise<Step<PassReport | undefined>> {
  const { deps, state, log } = ctx
  const revision = ctx.revision as string
  const sha = ctx.sha as string
  const plan = ctx.plan ?? []
  ctx.hooks.publishing()
  const inventory = state.inventory as Inventory
  const zones: CommitPublishedEvent['zones'] = []
  const time = deps.now()
  const events: BuiltEvent[] = []
  const isNew = sha !== state.lastAppliedSha
  if (isNew) {
    const earlier = alreadyPublished(inventory, plan, revision)
    if (earlier.length > 0)
      log.info({ zones: earlier.map((z) => z.zone) }, 'revision found half-published: sending its missing events')
    for (const z of earlier) {
      zones.push(z)
      events.push(rolloutPublishedEvent({ revision, time, zone: z.zone, generation: z.generation, digest: z.digest }))
    }
  }
  const current = readAhead(
    deps.bus,
    plan.flatMap((c) => (c.change === 'removed' ? [] : [c.zone])),
  )
  for (const c of plan) {
    try {
      if (c.change === 'removed') {
        await deps.bus.removeTable(c.zone, c.expectedKvRevision)
        inventory.delete(c.zone)
        state.lastGenerations.set(c.zone, c.previousGeneration)
        zones.push({ zone: c.zone, generation: c.previousGeneration, digest: '', change: 'removed' })
        log.child({ zone: c.zone }).info('zone removed')
      } else {
        const { generation, digest } = c.table
        const zlog = log.child({ zone: c.zone })
        // The key may already hold this very table although the inventory says otherwise (a write whose reply was
        // lost, an inventory read from a replica or leader behind): never the same content under a new generation.
        const now = await current(c.zone)
        if (now && now.digest === digest && now.signature?.key === c.table.signature?.key) {
          const { signature: _s, ...body } = c.table
          const kept: InventoryEntry = {
            table: { ...body, generation: now.generation, revision: now.revision, ...signatureOf(now) },
            kvRevision: now.kvRevision,
          }
          inventory.set(c.zone, kept)
          state.lastGenerations.set(c.zone, Math.max(now.generation, state.lastGenerations.get(c.zone) ?? 0))
          zlog.info(
            {
              generation: now.generation,
              digest,
              kvRevision: now.kvRevision,
              revision: now.revision,
              why: c.why,
            },
            'zone not republished: its key already holds this table',
          )
          // written at this revision by an earlier attempt: part of this commit's publication (as alreadyPublished)
          if (now.revision === revision) {
            zones.push({ zone: c.zone, generation: now.generation, digest, change: c.change })
            events.push(rolloutPublishedEvent({ revision, time, zone: c.zone, generation: now.generation, digest }))
          }
          c.json = undefined // not written: not kept for the rest of the pass
          continue
        }
        // why (issue #12): what the inventory held for the zone, and the KV revision the CAS write expects
        zlog.info({ generation, digest, expectedKvRevision: c.expectedKvRevision, why: c.why }, 'publishing zone')
        const kvRevision = await deps.bus.publishTable(c.table, c.expectedKvRevision, c.json)
        c.json = undefined // published: not kept for the rest of the pass
        inventory.set(c.zone, { table: c.table, kvRevision })
        state.lastGenerations.set(c.zone, c.table.generation)
        zones.push({ zone: c.zone, generation: c.table.generation, digest: c.table.digest, change: c.change })
        events.push(rolloutPublishedEvent({ revision, time, zone: c.zone, generation, digest }))
        zlog.info({ generation, digest, kvRevision, routes: c.table.routes.length }, 'zone published')
      }
    } catch (err) {
      const target = `zonegate-tables/${c.zone}.table`
      queueEvents(state, events)
      return { error: asReconcileError(err, (m, cause) => new PublishFailed(target, m, { cause })) }
    }
  }
  state.lastAppliedSha = sha
  if (state.stalledSha === sha) state.stalledSha = undefined
  zones.sort((a, b) => (a.zone < b.zone ? -1 : a.zone > b.zone ? 1 : 0))
  if (isNew || zones.length > 0)
    events.push(commitPublishedEvent({ revision, time, zones, publication: commitPublication(zones) }))
  const sent = await emitAll(deps, state, events)
  if ('error' in sent) return sent
  ctx.zones = zones
  return { value: undefined }
}

const signatureOf = (t: CurrentTable) => (t.signature ? { signature: t.signature } : {})

/** Zones whose current table is read ahead of the write loop, in parallel. */
const READ_AHEAD = 16

/**
 * The current table of each zone the loop will write (`zones`, in its order), read up to READ_AHEAD zones ahead so
 * the reads overlap (one STREAM.MSG.GET each, ~0.7 ms on a loopback R3 cluster, about what a write takes). Each
 * read starts at most READ_AHEAD writes before its own. A read that fails rejects when its zone's turn comes.
 */
export function readAhead(
  bus: PassContext['deps']['bus'],
  zones: string[],
): (zone: string) => Promise<CurrentTable | undefined> {
  const started = new Map<string, Promise<CurrentTable | undefined>>()
  let next = 0
  const fill = () => {
    while (next < zones.length && started.size < READ_AHEAD) {
      const zone = zones[next++] as string
      const read = bus.currentTable(zone)
      read.catch(() => {}) // observed when its turn comes; the loop may stop before (a failed write)
      started.set(zone, read)
    }
  }
  fill()
  return (zone) => {
    const read = started.get(zone) ?? bus.currentTable(zone)
    started.delete(zone)
    fill()
    return read
  }
}
