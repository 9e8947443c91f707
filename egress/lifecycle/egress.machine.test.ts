import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, waitFor } from 'xstate'
import type { ZoneTable } from '../../schemas/table.js'
import { buildTable, route } from '../../test/helpers/table.js'
import { RejectedTable } from '../core/admission.js'
import { CompactZoneTable, compactRoutes } from '../core/compact-table.js'
import { egressMachine } from './egress.machine.js'
import {
  admitTable,
  type EgressInput,
  initialContext,
  type TableRejected,
  withRejection,
  withSwap,
} from './egress-context.js'

function table(generation: number | undefined, snis: string[] = ['a.test'], zone = 'zone-a'): ZoneTable {
  return buildTable(
    snis.map((sni) => route(sni)),
    { zone, ...(generation === undefined ? {} : { generation, revision: null }) },
  )
}

interface Fakes {
  loads: unknown[]
  applied: ZoneTable[]
  started: ZoneTable[]
  rejected: TableRejected[]
  drains: number
  applyDelayMs?: number
}

function run(loads: unknown[], input: Partial<EgressInput> = {}, extra: Partial<Fakes> = {}) {
  const fakes: Fakes = { loads, applied: [], started: [], rejected: [], drains: 0, ...extra }
  const machine = egressMachine.provide({
    actors: {
      loadTable: fromPromise(async () => {
        const next = fakes.loads.shift()
        if (next instanceof Error) throw next
        return next
      }),
      start: fromPromise(async ({ input }: { input: { table: ZoneTable } }) => {
        fakes.started.push(input.table)
        return { listen: '127.0.0.1:1', ms: 1 }
      }),
      applyTable: fromPromise(async ({ input }: { input: { table: ZoneTable } }) => {
        if (fakes.applyDelayMs) await new Promise((r) => setTimeout(r, fakes.applyDelayMs))
        fakes.applied.push(input.table)
        return { ms: 0.5 }
      }),
      drain: fromPromise(async () => {
        fakes.drains++
        return { destroyed: 0 }
      }),
      connectBus: fromPromise(async () => {}),
    },
    actions: { reportRejected: (_, r: TableRejected) => void fakes.rejected.push(r) },
  })
  const actor = createActor(machine, { input: { source: 'static', instance: 'i1', ...input } }).start()
  return { actor, fakes }
}

const settled = (actor: ReturnType<typeof run>['actor'], state: string) =>
  waitFor(actor, (s) => s.matches(state as never), { timeout: 2000 })

describe('egress machine', () => {
  it('egress machine - loads, starts and serves the first table', async () => {
    const { actor, fakes } = run([table(1)])
    const s = await settled(actor, 'serving')
    expect(fakes.started.map((t) => t.generation)).toEqual([1])
    expect(s.context.table?.generation).toBe(1)
    expect(s.context.lastSwap).toMatchObject({ generation: 1, routes: 1, ms: 1 })
  })

  const fatal: [string, unknown, RegExp][] = [
    ['an invalid first table', { kind: 'nope' }, /first table rejected: invalid/],
    ['a first table for another zone', table(1, ['a'], 'zone-b'), /first table rejected: wrong-zone/],
    ['an unreadable file', new Error('ENOENT: no such file'), /cannot load the table: ENOENT/],
  ]
  it.each(fatal)('egress machine - stops on %s', async (_n, load, message) => {
    const { actor, fakes } = run([load], { zone: 'zone-a' })
    const s = await settled(actor, 'stopped')
    expect(s.context.error).toMatch(message)
    expect(fakes.started).toEqual([])
  })

  it('egress machine - a newer table is applied, older and invalid ones are rejected', async () => {
    const { actor, fakes } = run([table(5)])
    await settled(actor, 'serving')
    actor.send({ type: 'table.received', table: table(6, ['b.test']), source: 'nats' })
    await waitFor(actor, (s) => s.context.swaps === 2)
    for (const bad of [table(6, ['c.test']), table(3), { ...table(9), digest: `sha256:${'0'.repeat(64)}` }, null]) {
      actor.send({ type: 'table.received', table: bad, source: 'nats' })
    }
    const s = await waitFor(actor, (st) => st.context.rejections === 4 && st.matches('serving'))
    expect(fakes.applied.map((t) => t.generation)).toEqual([6])
    expect(s.context.table?.generation).toBe(6)
    expect(fakes.rejected.map((r) => r.reason)).toEqual([
      'stale-generation',
      'stale-generation',
      'digest-mismatch',
      'invalid',
    ])
    expect(s.context.lastRejection).toMatchObject({ reason: 'invalid', source: 'nats' })
  })

  it('egress machine - reload reads the source again; a failed read keeps the table', async () => {
    const { actor, fakes } = run([
      table(undefined, ['a']),
      table(undefined, ['b']),
      new Error('bad json'),
      table(undefined, ['b']),
    ])
    await settled(actor, 'serving')
    actor.send({ type: 'reload' })
    await waitFor(actor, (s) => s.context.swaps === 2 && s.matches('serving'))
    actor.send({ type: 'reload' })
    await waitFor(actor, (s) => s.context.rejections === 1 && s.matches('serving'))
    actor.send({ type: 'reload' })
    const s = await waitFor(actor, (st) => st.context.rejections === 2 && st.matches('serving'))
    expect(fakes.rejected.map((r) => r.reason)).toEqual(['load-failed', 'unchanged'])
    expect(s.context.table?.routes.map((r) => r.sni)).toEqual(['b'])
  })

  it('egress machine - a table received while applying is admitted right after', async () => {
    const { actor, fakes } = run([table(1)], {}, { applyDelayMs: 30 })
    await settled(actor, 'serving')
    actor.send({ type: 'table.received', table: table(2), source: 'nats' })
    actor.send({ type: 'table.received', table: table(3), source: 'nats' })
    const s = await waitFor(actor, (st) => st.context.swaps === 3 && st.matches('serving'))
    expect(fakes.applied.map((t) => t.generation)).toEqual([2, 3])
    expect(s.context.queued).toBeUndefined()
  })

  it('egress machine - drain with exit stops; drain of listeners only waits in drained', async () => {
    const a = run([table(1)])
    await settled(a.actor, 'serving')
    a.actor.send({ type: 'drain', exit: true })
    await settled(a.actor, 'stopped')
    expect(a.fakes.drains).toBe(1)

    const b = run([table(1)])
    await settled(b.actor, 'serving')
    b.actor.send({ type: 'drain', exit: false })
    await settled(b.actor, 'drained')
    b.actor.send({ type: 'table.received', table: table(2), source: 'nats' })
    expect(b.actor.getSnapshot().value).toBe('drained')
    b.actor.send({ type: 'drain', exit: true })
    await settled(b.actor, 'stopped')
    expect(b.fakes.drains).toBe(1)
  })

  it('egress machine - NATS source waits for a valid table and rides out bus loss', async () => {
    const { actor } = run([], { source: 'nats' })
    await settled(actor, 'awaitingTable')
    actor.send({ type: 'table.received', table: { bogus: true }, source: 'nats' })
    await waitFor(actor, (s) => s.context.rejections === 1 && s.matches('awaitingTable'))
    actor.send({ type: 'table.received', table: table(4), source: 'nats' })
    await settled(actor, 'serving')
    actor.send({ type: 'bus.lost' })
    expect(actor.getSnapshot().matches('degraded')).toBe(true)
    actor.send({ type: 'bus.restored' })
    expect(actor.getSnapshot().context).toMatchObject({ busLost: false, table: { generation: 4 } })
  })

  it('egress machine - NATS source without a connectBus effect stops with an error', async () => {
    const actor = createActor(egressMachine, { input: { source: 'nats', instance: 'i' } }).start()
    const s = await settled(actor, 'stopped')
    expect(s.context.error).toBe('connectBus not provided')
  })
})

describe('egress context', () => {
  const ctx = initialContext({ source: 'static', instance: 'i' })
  it('egress context - admitTable accepts newer valid tables and names the reason otherwise', () => {
    expect(admitTable(undefined, table(1), 'file')).toMatchObject({ ok: true, source: 'file' })
    expect(admitTable(table(2), table(2), 'nats')).toMatchObject({
      ok: false,
      reason: 'stale-generation',
      generation: 2,
    })
    expect(admitTable(undefined, 42, 'file')).toMatchObject({ ok: false, reason: 'invalid' })
    expect(admitTable(undefined, table(1), 'file', 'zone-x')).toMatchObject({ ok: false, reason: 'wrong-zone' })
  })

  it('egress context - withSwap and withRejection count and record', () => {
    const swapped = withSwap(ctx, table(7, ['x', 'y']), 1.25)
    expect(swapped).toMatchObject({ swaps: 1, lastSwap: { generation: 7, routes: 2, ms: 1.25 } })
    const r = withRejection(ctx, { reason: 'invalid', problems: ['p'], source: 'file' })
    expect(r).toMatchObject({ rejections: 1, lastRejection: { reason: 'invalid' }, candidate: undefined })
  })

  it('egress context - admitTable takes what the admission worker made: compact tables (generation rule still applied) and rejections', () => {
    const compact = (t: ZoneTable) => {
      const { routes, ...meta } = t
      return new CompactZoneTable(meta, compactRoutes(routes))
    }
    const ok = admitTable(table(1), compact(table(2, ['a', 'b'])), 'nats', 'zone-a')
    expect(ok).toMatchObject({ ok: true })
    expect(ok.ok && withSwap(initialContext({ source: 'nats', instance: 'i' }), ok.table, 1).lastSwap?.routes).toBe(2)
    expect(admitTable(table(3), compact(table(2)), 'nats', 'zone-a')).toMatchObject({
      ok: false,
      reason: 'stale-generation',
    })
    expect(admitTable(undefined, compact(table(2)), 'nats', 'zone-b')).toMatchObject({
      ok: false,
      reason: 'wrong-zone',
    })
    // checked with other trusted keys than the egress's (a wiring mistake): refused, not trusted blindly
    expect(admitTable(undefined, compact(table(2)), 'nats', 'zone-a', ['UKEY'])).toMatchObject({
      ok: false,
      reason: 'invalid',
    })
    const { routes, ...meta } = table(2)
    const checked = new CompactZoneTable(meta, compactRoutes(routes), ['UKEY'])
    expect(admitTable(undefined, checked, 'nats', 'zone-a', ['UKEY'])).toMatchObject({ ok: true })
    expect(admitTable(undefined, checked, 'nats', 'zone-a')).toMatchObject({ ok: false, reason: 'invalid' })
    const refused = new RejectedTable({ reason: 'digest-mismatch', problems: ['p'], generation: 4 })
    expect(admitTable(table(1), refused, 'nats')).toEqual({
      ok: false,
      reason: 'digest-mismatch',
      problems: ['p'],
      generation: 4,
      source: 'nats',
    })
  })
})
