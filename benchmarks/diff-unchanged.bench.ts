import { compileZoneTables } from '../reconciler/core/compile.js'
import { diffZoneTables, hasChanges } from '../reconciler/core/diff.js'
import type { Inventory } from '../reconciler/pass-state.js'
import { planZoneChanges } from '../reconciler/steps/plan.js'
import { gitRevision } from '../schemas/revision.js'
import { FULL_SIZE, generateResources, medianMs, SMOKE_SIZE } from './compile.bench.js'
import type { BenchContext } from './run.js'

/**
 * diff-unchanged, over two independent compiles of the same snapshot (10,000 ExternalServices, 3 meshes, 20
 * zones):
 * - the pass's diff: `planZoneChanges` (reconciler/steps/plan.ts) of the new tables against an inventory holding
 *   the previous ones, what every pass on a new commit runs (target < 50 ms); a commit that changes no table
 *   plans nothing;
 * - `zonegate diff`'s route diff, `diffZoneTables` (reconciler/core/diff.ts), for the same unchanged snapshot and,
 *   for scale, when every zone changed one route (no digest fast path: every route of every zone is compared).
 */
export default async function bench(ctx: BenchContext): Promise<void> {
  const size = ctx.smoke ? SMOKE_SIZE : FULL_SIZE
  const resources = generateResources(size)
  const previous = compileZoneTables(resources)
  const next = [...compileZoneTables(resources).values()]
  const runs = ctx.smoke ? 1 : 51
  const revision = gitRevision('main', '0'.repeat(40))
  const inventory: Inventory = new Map(
    [...previous.values()].map((t) => [t.zone, { table: { ...t, generation: 1, revision }, kvRevision: 1 }]),
  )
  let planned = -1
  const msPlan = medianMs(() => {
    planned = planZoneChanges(inventory, next, gitRevision('main', '1'.repeat(40))).length
  }, runs)
  if (planned !== 0) throw new Error(`diff-unchanged: the pass planned ${planned} write(s) for an unchanged commit`)
  ctx.report(
    `pass diff (planZoneChanges), unchanged, ${size.externalServices} ES × ${size.zones} zones (median)`,
    msPlan,
    'ms',
    {
      target: 50,
    },
  )

  let changed = true
  const ms = medianMs(() => {
    changed = hasChanges(diffZoneTables(previous, next))
  }, runs)
  if (changed) throw new Error('diff-unchanged: expected no change')
  ctx.report(`zonegate diff (diffZoneTables), unchanged (median)`, ms, 'ms')

  const first = resources.externalServices.find((e) => e.resource.tags['kuma.io/zone'] === undefined)
  if (first) first.resource.networking = { ...first.resource.networking, address: 'moved.example.com:443' }
  const moved = compileZoneTables(resources)
  let zones = 0
  const msChanged = medianMs(
    () => {
      zones = diffZoneTables(previous, moved).filter((z) => z.status === 'changed').length
    },
    ctx.smoke ? 1 : 9,
  )
  ctx.report(`zonegate diff, one route changed in every zone (median)`, msChanged, 'ms', {
    note: `${zones} zones changed`,
  })
}
