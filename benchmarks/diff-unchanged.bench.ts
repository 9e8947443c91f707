import { compileZoneTables } from '../reconciler/core/compile.js'
import { diffZoneTables, hasChanges } from '../reconciler/core/diff.js'
import { FULL_SIZE, generateResources, medianMs, SMOKE_SIZE } from './compile.bench.js'
import type { BenchContext } from './run.js'

/**
 * diff-unchanged: `diffZoneTables` between two independent compiles of the same snapshot (10,000 ExternalServices,
 * 3 meshes, 20 zones): the pass that runs most often (target < 50 ms). For scale, also the diff when every zone
 * changed one route (no digest fast path: every route of every zone is compared).
 */
export default async function bench(ctx: BenchContext): Promise<void> {
  const size = ctx.smoke ? SMOKE_SIZE : FULL_SIZE
  const resources = generateResources(size)
  const previous = compileZoneTables(resources)
  const next = compileZoneTables(resources)
  const runs = ctx.smoke ? 1 : 51
  let changed = true
  const ms = medianMs(() => {
    changed = hasChanges(diffZoneTables(previous, next))
  }, runs)
  if (changed) throw new Error('diff-unchanged: expected no change')
  ctx.report(`diff unchanged, ${size.externalServices} ES × ${size.zones} zones (median)`, ms, 'ms', { target: 50 })

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
  ctx.report(`diff, one route changed in every zone (median)`, msChanged, 'ms', { note: `${zones} zones changed` })
}
