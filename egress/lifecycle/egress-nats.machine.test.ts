import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, waitFor } from 'xstate'
import type { ZoneTable } from '../../schemas/table.js'
import { buildTable, route } from '../../test/helpers/table.js'
import { egressMachine } from './egress.machine.js'
import { admissionBase, initialContext, type TableRejected, withSwap } from './egress-context.js'

/** The NATS-mode paths of the lifecycle: connecting, the saved table, degraded, resync after a removal. */
const table = (generation: number, snis: string[] = ['a.test']): ZoneTable =>
  buildTable(
    snis.map((sni) => route(sni)),
    { generation, revision: null },
  )

function run(opts: { connect?: Promise<void> } = {}) {
  const applied: ZoneTable[] = []
  const rejected: TableRejected[] = []
  const machine = egressMachine.provide({
    actors: {
      connectBus: fromPromise(() => opts.connect ?? Promise.resolve()),
      start: fromPromise(async ({ input }: { input: { table: ZoneTable } }) => {
        applied.push(input.table)
        return { listen: '127.0.0.1:1', ms: 1 }
      }),
      applyTable: fromPromise(async ({ input }: { input: { table: ZoneTable } }) => {
        applied.push(input.table)
        return { ms: 0.5 }
      }),
      drain: fromPromise(async () => ({ destroyed: 0 })),
    },
    actions: { reportRejected: (_, r: TableRejected) => void rejected.push(r) },
  })
  const actor = createActor(machine, { input: { source: 'nats', zone: 'zone-a', instance: 'i1' } }).start()
  return { actor, applied, rejected }
}

const never = new Promise<void>(() => {})

describe('egress machine (NATS mode)', () => {
  it('egress machine - NATS mode waits for a table after connecting, then serves it', async () => {
    const { actor, applied } = run()
    await waitFor(actor, (s) => s.matches('awaitingTable'))
    expect(actor.getSnapshot().context.busLost).toBe(false)
    actor.send({ type: 'table.received', table: table(3), source: 'nats' })
    const s = await waitFor(actor, (st) => st.matches('serving'))
    expect(applied.map((t) => t.generation)).toEqual([3])
    expect(s.context.lastSwap).toMatchObject({ generation: 3, source: 'nats' })
    expect(s.context.resync).toBe(false)
  })

  it('egress machine - the saved table serves while NATS is down (degraded), NATS then replaces it', async () => {
    const { actor, applied } = run({ connect: never })
    actor.send({ type: 'table.received', table: table(7), source: 'file' })
    const s = await waitFor(actor, (st) => st.matches('degraded'))
    expect(s.context.resync).toBe(true)
    actor.send({ type: 'bus.restored' })
    await waitFor(actor, (st) => st.matches('serving'))
    // same generation as the cache: admitted anyway (the KV is the truth), then resync ends
    actor.send({ type: 'table.received', table: table(7, ['b.test']), source: 'nats' })
    const after = await waitFor(actor, (st) => st.context.swaps === 2 && st.matches('serving'))
    expect(applied.map((t) => t.routes[0]?.sni)).toEqual(['a.test', 'b.test'])
    expect(after.context.resync).toBe(false)
  })

  it('egress machine - bus.lost in any state shows as degraded once serving; tables still apply', async () => {
    const { actor, applied } = run()
    await waitFor(actor, (s) => s.matches('awaitingTable'))
    actor.send({ type: 'bus.lost' })
    actor.send({ type: 'table.received', table: table(1), source: 'nats' })
    await waitFor(actor, (s) => s.matches('degraded'))
    actor.send({ type: 'table.received', table: table(2), source: 'nats' })
    await waitFor(actor, (s) => s.context.swaps === 2 && s.matches('degraded'))
    actor.send({ type: 'bus.restored' })
    await waitFor(actor, (s) => s.matches('serving'))
    actor.send({ type: 'bus.lost' })
    await waitFor(actor, (s) => s.matches('degraded'))
    expect(applied.map((t) => t.generation)).toEqual([1, 2])
  })

  it('egress machine - after table.removed a lower generation (re-created zone) is admitted', async () => {
    const { actor, applied, rejected } = run()
    await waitFor(actor, (s) => s.matches('awaitingTable'))
    actor.send({ type: 'table.received', table: table(9), source: 'nats' })
    await waitFor(actor, (s) => s.matches('serving'))
    actor.send({ type: 'table.received', table: table(1, ['b.test']), source: 'nats' })
    await waitFor(actor, (s) => s.context.rejections === 1)
    expect(rejected[0]).toMatchObject({ reason: 'stale-generation', source: 'nats', generation: 1 })
    actor.send({ type: 'table.removed', reason: 'DEL' })
    actor.send({ type: 'table.received', table: table(1, ['b.test']), source: 'nats' })
    const s = await waitFor(actor, (st) => st.context.swaps === 2 && st.matches('serving'))
    expect(applied.map((t) => t.generation)).toEqual([9, 1])
    expect(s.context.resync).toBe(false)
  })

  it('egress machine - a table arriving while starting is queued and applied next', async () => {
    const { actor, applied } = run()
    await waitFor(actor, (s) => s.matches('awaitingTable'))
    actor.send({ type: 'table.received', table: table(1), source: 'nats' })
    actor.send({ type: 'table.received', table: table(2), source: 'nats' })
    await waitFor(actor, (s) => s.context.swaps === 2 && s.matches('serving'))
    expect(applied.map((t) => t.generation)).toEqual([1, 2])
  })

  const bases: [string, boolean, 'file' | 'nats', boolean][] = [
    ['nats mode, saved table', true, 'file', true],
    ['nats mode, nats table', true, 'nats', false],
    ['static mode, file', false, 'file', false],
  ]
  it.each(bases)('egress context - withSwap resync for %s', (_n, nats, source, resync) => {
    const ctx = initialContext({ source: nats ? 'nats' : 'static', instance: 'i' })
    const next = { ...ctx, ...withSwap(ctx, table(4), 1, source) }
    expect(next.resync).toBe(resync)
    expect(admissionBase(next)?.generation).toBe(resync ? undefined : 4)
  })
})
