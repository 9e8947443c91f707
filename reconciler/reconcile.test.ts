import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { generateSigningKey, loadSigningKey } from '../schemas/signing.js'
import type { PublishedZoneTable } from '../schemas/table.js'
import { tableEnvelopeJson } from '../schemas/table-transport.js'
import { compileZoneTables } from './core/compile.js'
import { FetchFailed, PublishFailed } from './core/errors.js'
import type { BuiltEvent } from './core/events.js'
import type { Snapshot } from './core/model.js'
import { validateSnapshot } from './core/validate/index.js'
import { initialPassState } from './pass-state.js'
import { reconcileOnce } from './reconcile.js'
import type { PassDeps } from './steps/types.js'
import type { PassHooks } from './triggers.js'

const SHA_A = 'a'.repeat(40)
const SHA_B = 'b'.repeat(40)
const MESH =
  'type: Mesh\nname: default\nmtls:\n  enabledBackend: ca-1\n  backends:\n    - name: ca-1\n      type: builtin\n'
const EGRESS = 'type: ZoneEgress\nname: ze-a\nzone: zone-a\nnetworking:\n  address: 127.0.0.1\n  port: 10002\n'
const EXT =
  'type: ExternalService\nname: ext\nmesh: default\ntags:\n  kuma.io/service: ext\nnetworking:\n  address: 127.0.0.1:18080\n'

/** An in-memory world: a source with commits, a KV map and an event log. Unit test of the pass's rules. */
function world(commits: Record<string, Record<string, string>>) {
  let tip = Object.keys(commits)[0] as string
  /** `json`: the envelope JSON the pass handed to the publisher (undefined: the publisher serialises it). */
  const kv = new Map<string, { value: string; rev: number; json?: string | undefined }>()
  let rev = 0
  const events: BuiltEvent[] = []
  const faults = { emit: 0, resolve: 0, maxTableBytes: 1024 * 1024 }
  const deps: PassDeps = {
    source: {
      resolve: async () => {
        if (faults.resolve-- > 0) throw new FetchFailed('repo', 'network down')
        return tip
      },
      fetch: async (sha): Promise<Snapshot> => ({
        revision: `main@sha1:${sha}`,
        files: new Map(Object.entries(commits[sha] ?? {})),
      }),
    },
    validate: (s) => validateSnapshot(s),
    compile: (r) => [...compileZoneTables(r).values()],
    bus: {
      readInventory: async () => new Map(),
      currentTable: async (zone) => {
        const e = kv.get(zone)
        if (!e) return undefined
        const t = JSON.parse(e.value) as PublishedZoneTable
        const { generation, revision, digest, signature } = t
        return { generation, revision, digest, ...(signature ? { signature } : {}), kvRevision: e.rev }
      },
      publishTable: async (t, expected, json) => {
        if ((kv.get(t.zone)?.rev ?? 0) !== expected) throw new Error('wrong last sequence')
        kv.set(t.zone, { value: JSON.stringify(t), rev: ++rev, json })
        return rev
      },
      removeTable: async (zone) => {
        kv.delete(zone)
      },
      maxTableBytes: () => faults.maxTableBytes,
      emit: async (e) => {
        if (faults.emit-- > 0) throw new PublishFailed(e.subject, 'timeout')
        events.push(e)
      },
    },
    allowEmpty: false,
    branch: 'main',
    now: () => new Date('2026-01-01T00:00:00Z'),
    log: pino({ level: 'silent' }),
  }
  return {
    deps,
    kv,
    events,
    faults,
    setTip: (sha: string) => {
      tip = sha
    },
  }
}

const hooks = (signal = new AbortController().signal): PassHooks => ({
  signal,
  fetched: () => {},
  publishing: () => {},
})
const good = { 'mesh.yaml': MESH, 'egress.yaml': EGRESS, 'ext.yaml': EXT }

describe('reconcile', () => {
  it('reconcile - applies, then stops early on the same sha', async () => {
    const w = world({ [SHA_A]: good })
    const state = initialPassState()
    expect(await reconcileOnce(w.deps, state, hooks())).toMatchObject({ result: 'applied', sha: SHA_A })
    expect(await reconcileOnce(w.deps, state, hooks())).toMatchObject({ result: 'unchanged' })
    expect(w.events.map((e) => e.subject)).toEqual([
      `zonegate.events.commit.${SHA_A}.fetched`,
      'zonegate.events.rollout.zone-a.published',
      `zonegate.events.commit.${SHA_A}.published`,
    ])
  })

  it('reconcile - an invalid sha is reported once and skipped until the tip moves', async () => {
    const w = world({ [SHA_A]: { ...good, 'egress.yaml': `${EGRESS}  bogus: [` }, [SHA_B]: good })
    const state = initialPassState()
    expect((await reconcileOnce(w.deps, state, hooks())).result).toBe('invalid')
    expect((await reconcileOnce(w.deps, state, hooks())).result).toBe('skipped')
    expect(w.events.filter((e) => e.subject.endsWith('.invalid')).length).toBe(1)
    expect(w.kv.size).toBe(0)
    w.setTip(SHA_B)
    expect((await reconcileOnce(w.deps, state, hooks())).result).toBe('applied')
  })

  it('reconcile - a table over the largest publishable size stalls the commit instead of retrying forever', async () => {
    const w = world({ [SHA_A]: good })
    w.faults.maxTableBytes = 400
    const report = await reconcileOnce(w.deps, initialPassState(), hooks())
    expect(report).toMatchObject({ result: 'invalid', error: { code: 'TableTooLarge' } })
    expect(report.result === 'invalid' && report.error.message).toMatch(
      /zone-a: table is \d+ bytes, over the largest table zonegate publishes \(400 bytes\)/,
    )
    expect(w.kv.size).toBe(0)
  })

  it('reconcile - the publisher gets the JSON the diff measured, exactly what it wrote itself before (tableEnvelopeJson)', async () => {
    const w = world({ [SHA_A]: good })
    w.deps.signer = loadSigningKey(generateSigningKey().seed)
    expect(await reconcileOnce(w.deps, initialPassState(), hooks())).toMatchObject({ result: 'applied' })
    const written = w.kv.get('zone-a')!
    const table = JSON.parse(written.value) as PublishedZoneTable
    expect(table.signature).toBeDefined()
    // handed over (not left for the publisher to serialise again), and the very bytes it wrote before
    expect(written.json).toBeDefined()
    expect(written.json).toBe(tableEnvelopeJson(table))
  })

  it('reconcile - an abort before publishing supersedes the pass and names the newer commit', async () => {
    const w = world({ [SHA_A]: good })
    const c = new AbortController()
    c.abort({ by: SHA_B })
    const report = await reconcileOnce(w.deps, initialPassState(), hooks(c.signal))
    expect(report).toMatchObject({ result: 'superseded', by: `main@sha1:${SHA_B}` })
    const ev = w.events.find((e) => e.subject === `zonegate.events.commit.${SHA_A}.superseded`)
    expect(ev?.payload).toMatchObject({ type: 'commit.superseded', by: `main@sha1:${SHA_B}` })
    expect(w.kv.size).toBe(0)
  })

  it('reconcile - failures are transient and undelivered events are sent by the next pass', async () => {
    const w = world({ [SHA_A]: good })
    const state = initialPassState()
    w.faults.resolve = 1
    expect(await reconcileOnce(w.deps, state, hooks())).toMatchObject({
      result: 'failed',
      error: { code: 'FetchFailed' },
    })
    w.faults.emit = 2 // the fetched event fails twice; it is queued once and sent by the third pass
    expect((await reconcileOnce(w.deps, state, hooks())).result).toBe('failed')
    expect((await reconcileOnce(w.deps, state, hooks())).result).toBe('failed')
    expect(await reconcileOnce(w.deps, state, hooks())).toMatchObject({ result: 'applied' })
    expect(w.events.map((e) => e.subject.split('.').slice(-2).join('.'))).toEqual([
      `${SHA_A}.fetched`,
      'zone-a.published',
      `${SHA_A}.published`,
    ])
  })
})

describe('reconcile - a commit found half-published (issue #16.4)', () => {
  const EGRESS_B = EGRESS.replace(/ze-a/g, 'ze-b').replace('zone-a', 'zone-b').replace('10002', '10012')
  it('reconcile - the next holder sends the events of the zones written before it took over', async () => {
    const two = { ...good, 'egress-b.yaml': EGRESS_B }
    const w = world({ [SHA_A]: two })
    // A previous holder compiled and wrote zone-a for this commit, then died before any event.
    const tables = [
      ...compileZoneTables(
        validateSnapshot({ revision: `main@sha1:${SHA_A}`, files: new Map(Object.entries(two)) }).resources,
      ).values(),
    ]
    const a = tables.find((t) => t.zone === 'zone-a')
    if (!a) throw new Error('no zone-a table')
    const written = { ...a, generation: 1, revision: `main@sha1:${SHA_A}` }
    w.deps.bus.readInventory = async () => new Map([['zone-a', { table: written, kvRevision: 1 }]])
    w.kv.set('zone-a', { value: JSON.stringify(written), rev: 1 })
    const report = await reconcileOnce(w.deps, initialPassState(), hooks())
    expect(report).toMatchObject({ result: 'applied' })
    const subjects = w.events.map((e) => e.subject)
    expect(subjects).toContain('zonegate.events.rollout.zone-a.published')
    expect(subjects).toContain('zonegate.events.rollout.zone-b.published')
    const published = w.events.find((e) => e.subject.endsWith('.published') && e.subject.includes('.commit.'))
    expect(((published?.payload ?? { zones: [] }) as { zones: { zone: string }[] }).zones.map((z) => z.zone)).toEqual([
      'zone-a',
      'zone-b',
    ])
    expect(report.result === 'applied' && report.zones.map((z) => z.zone)).toEqual(['zone-a', 'zone-b'])
  })

  it('reconcile - an applied commit seen again after a restart sends nothing again', async () => {
    const w = world({ [SHA_A]: good })
    const state = initialPassState()
    await reconcileOnce(w.deps, state, hooks())
    const inventory = state.inventory
    const n = w.events.length
    const restarted = { ...initialPassState(), lastAppliedSha: SHA_A }
    w.deps.bus.readInventory = async () => new Map(inventory)
    expect(await reconcileOnce(w.deps, restarted, hooks())).toMatchObject({ result: 'unchanged' })
    expect(w.events.length).toBe(n)
  })
})

describe('reconcile - never the same table under a new generation (issue #12)', () => {
  it('reconcile - a zone whose key already holds the compiled table is not written again, whatever the inventory said', async () => {
    const w = world({ [SHA_A]: good })
    const state = initialPassState()
    expect(await reconcileOnce(w.deps, state, hooks())).toMatchObject({ result: 'applied' })
    const written = w.kv.get('zone-a')
    expect(written?.rev).toBe(1)
    // An inventory behind the key (a write whose reply was lost; a read from a replica or leader not caught up)
    // and a CAS that lets the stale revision through (nats-server 2.9.10 clustered checks it only before proposing)
    const stale = { ...JSON.parse(written?.value ?? '{}'), digest: 'sha256:older', generation: 0 }
    w.deps.bus.readInventory = async () => new Map([['zone-a', { table: stale, kvRevision: 1 }]])
    w.deps.bus.publishTable = async (t) => {
      w.kv.set(t.zone, { value: JSON.stringify(t), rev: (w.kv.get(t.zone)?.rev ?? 0) + 1 })
      return w.kv.get(t.zone)?.rev ?? 0
    }
    const takeover = { ...initialPassState(), lastGenerations: new Map([['zone-a', 1]]) }
    const report = await reconcileOnce(w.deps, takeover, hooks())
    expect(report).toMatchObject({ result: 'applied', zones: [{ zone: 'zone-a', generation: 1 }] })
    expect(w.kv.get('zone-a')).toEqual(written)
    expect(takeover.inventory?.get('zone-a')).toMatchObject({ kvRevision: 1, table: { generation: 1 } })
    // the next pass on the same sha has nothing to do
    expect(await reconcileOnce(w.deps, takeover, hooks())).toMatchObject({ result: 'unchanged' })
    expect(w.kv.get('zone-a')).toEqual(written)
  })
})
