import { join } from 'node:path'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import type { Subscription } from '@nats-io/transport-node'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { loadSavedTable } from '../../egress/transport/state-store.js'
import { Bucket, commitSubject, EVENTS_STREAM, tableKey } from '../../schemas/subjects.js'
import { configDump, type Egress, openTls, type System, startSystem, waitForReady } from '../e2e/system.js'
import { type NatsCluster, startNatsCluster } from '../helpers/nats-cluster.js'
import { startTraffic, type Traffic } from './traffic.js'

/**
 * Faults of the running system (built CLI: reconciler, three zone-a egresses, TLS demo upstreams) on a real
 * 3-node nats-server cluster with the R3 layout. Every case runs steady TLS traffic plus held connections
 * through the egresses while it breaks something, and asserts what was kept — no failed connection, no held
 * connection lost, the table generation served. Convergence of new commits is asserted before and after an
 * egress kill, and for a commit made while the tables stream leader's node is down. Each case restores
 * what it broke (node restarted, egress restarted) before the next one.
 */
const SNI = 'billing{mesh=default}'
const INGRESS_B = 'zones/zone-b/zone-ingresses/ingress-1.yaml'
let cluster: NatsCluster
let sys: System
let sub: Subscription
const converged = new Set<string>()
let k = 0

const zoneA = () => sys.egresses.filter((e) => e.zone === 'zone-a' && e.proc.pid > 0 && live(e))
const live = (e: Egress) => {
  try {
    process.kill(e.proc.pid, 0)
    return true
  } catch {
    return false
  }
}
/**
 * A commit that changes zone-a's table (billing's weight, a new value each time: a commit whose tree equals what
 * is already published changes no zone and so never gets a `converged` event, e.g. when the reconciler skips an
 * intermediate commit during a NATS node loss), followed until converged. Convergence is read from the
 * events stream (the last message on `commit.<sha>.converged`), not from a core subscription, which misses what
 * is published while its connection moves to another node.
 */
async function commitAndConverge(label: string, timeoutMs = 60_000): Promise<string> {
  const text = sys.repo.files.get(INGRESS_B)!.replace(/instances: \d+/, `instances: ${2 + k++}`)
  const sha = await sys.commit({ [INGRESS_B]: text }, label)
  return waitConverged(sha, label, timeoutMs)
}
async function waitConverged(sha: string, label: string, timeoutMs = 60_000): Promise<string> {
  const jsm = await jetstreamManager(sys.nc, { timeout: 3000, checkAPI: false })
  const t0 = Date.now()
  await vi
    .waitFor(
      async () => {
        if (converged.has(sha)) return
        const m = await jsm.streams
          .getMessage(EVENTS_STREAM, { last_by_subj: commitSubject(sha, 'converged') })
          .catch(() => null)
        if (m) return
        void sys.kick()
        throw new Error(`${label}: ${sha} not converged yet`)
      },
      { timeout: timeoutMs, interval: 1000 },
    )
    .catch(async (err: Error) => {
      // what the processes said meanwhile: the reconciler, and where each egress is
      const dumps = await Promise.all(
        zoneA().map((e) =>
          configDump(e)
            .then(({ state, generation, digest }) => ({ state, generation, digest }))
            .catch((x: Error) => ({ error: x.message })),
        ),
      )
      const egresses = zoneA().map(
        (e, i) => `--- ${e.instance} ${JSON.stringify(dumps[i])}\n${e.proc.output().slice(-1500)}`,
      )
      throw new Error(
        `${err.message} (after ${Date.now() - t0} ms)\n--- reconciler\n${sys.reconciler.output().slice(-4000)}\n${egresses.join('\n')}`,
      )
    })
  return sha
}
/** Stops the traffic and asserts it lost nothing: no failed connection, no held connection closed. */
async function stopLosingNothing(traffic: Traffic, o: { everyPortServed?: boolean } = {}): Promise<void> {
  const r = await traffic.stop()
  expect(
    Object.values(r.failed).reduce((a, b) => a + b, 0),
    r.errors.join('\n'),
  ).toBe(0)
  if (o.everyPortServed) expect(Object.values(r.ok).every((n) => n > 0)).toBe(true)
  expect(traffic.lost()).toBe(0)
  traffic.release()
}
const generations = async () => Promise.all(zoneA().map(async (e) => (await configDump(e)).generation))
/**
 * The zone's generations once every egress serves the same one (a case starts from a settled zone: a
 * publication still reaching the egresses when NATS goes down would leave them apart for reasons of timing).
 * A commit converges once every instance the reconciler counts as live applied it; after a node loss an egress
 * whose heartbeat did not reach KV in time is not counted: in 17 runs of this file under load, 7 of 38 commits of
 * generation 4 and later had one egress apply it 0.9–4.2 s after the `converged` event. That is the likeliest
 * reading of a whole-suite run's [4,4,5] (issue #12; two egresses late there): the zone's KV history never held a
 * generation without a change in those runs (checked below). Fails if they do not agree within 20 s.
 */
async function settledGenerations(): Promise<(number | null)[]> {
  let now: (number | null)[] = []
  await vi.waitFor(
    async () => {
      now = await generations()
      expect(new Set(now).size, `generations ${JSON.stringify(now)}`).toBe(1)
    },
    { timeout: 20_000, interval: 500 },
  )
  return now
}

/**
 * zone-a's key in KV, oldest first (`kvRevision gGeneration revision digest`), and the generations among them
 * that carry the same digest as the generation before: a generation published with no change (issue #12; the
 * plan writes a zone only when its digest or signing key changed, and the key does not change here).
 */
async function unchangedRepublications(): Promise<{ history: string[]; unchanged: string[] }> {
  const kv = await new Kvm(jetstream(sys.nc, { timeout: 3000 })).open(Bucket.Tables)
  const history: string[] = []
  const unchanged: string[] = []
  let last: { digest: string; generation: number } | undefined
  for await (const e of await kv.history({ key: tableKey('zone-a') })) {
    if (e.operation !== 'PUT') continue
    const t = e.json<{ generation: number; revision: string; digest: string }>()
    history.push(`${e.revision} g${t.generation} ${t.revision} ${t.digest.slice(0, 19)}`)
    if (last && t.digest === last.digest && t.generation !== last.generation) unchanged.push(history.at(-1)!)
    last = t
  }
  return { history, unchanged }
}
/** Fails when zone-a's KV history holds a generation published with no change, showing the history. */
async function expectNoUnchangedRepublication(): Promise<void> {
  const { history, unchanged } = await unchangedRepublications()
  expect(unchanged, `zone-a.table history:\n${history.join('\n')}`).toEqual([])
}

beforeAll(async () => {
  cluster = await startNatsCluster()
  sys = await startSystem({
    cluster,
    egresses: [
      { zone: 'zone-a', instance: 'a1' },
      { zone: 'zone-a', instance: 'a2' },
      { zone: 'zone-a', instance: 'a3' },
    ],
    egressArgs: ['--grace', '1s'],
  })
  sub = sys.nc.subscribe(commitSubject('*', 'converged'), {
    callback: (_e, m) => {
      converged.add(m.subject.split('.')[3]!)
    },
  })
})

afterAll(async () => {
  sub?.unsubscribe()
  await sys?.stop()
  await cluster?.stop()
})

describe('faults: the system on a 3-node NATS cluster', () => {
  it('faults - the layout is R3: every bucket and the events stream', async () => {
    const jsm = await jetstreamManager(sys.nc)
    for (const name of [`KV_${Bucket.Tables}`, `KV_${Bucket.Instances}`, `KV_${Bucket.Leases}`, EVENTS_STREAM])
      expect((await jsm.streams.info(name)).config.num_replicas, name).toBe(3)
    await commitAndConverge('warm-up')
  })

  it('faults - kill -9 one egress of three under load: the others lose nothing; the restarted one serves its saved table', async () => {
    const [a1, a2, a3] = zoneA() as [Egress, Egress, Egress]
    const gen = (await configDump(a1)).generation
    const traffic = await startTraffic([a1.port, a2.port], SNI, { held: 4 })
    await new Promise((r) => setTimeout(r, 1000))
    process.kill(a3.proc.pid, 'SIGKILL')
    await a3.proc.exited
    await new Promise((r) => setTimeout(r, 1500))
    const r = await traffic.stop()
    expect(r.failed, r.errors.join('\n')).toEqual({ [a1.port]: 0, [a2.port]: 0 })
    expect(r.ok[a1.port]).toBeGreaterThan(0)
    expect(traffic.lost()).toBe(0)
    traffic.release()
    // restore: the same instance again (same state dir); it serves the table it saved, generation unchanged
    const again = await sys.startEgress('zone-a', 'a3')
    await waitForReady(again)
    expect((await configDump(again)).generation).toBe(gen)
    ;(await openTls(again.port, SNI)).socket.destroy()
    await commitAndConverge('after egress restart')
    expect(new Set(await generations()).size).toBe(1)
  })

  it('faults - kill a NATS node, then the tables stream leader, during rollouts: traffic and held connections untouched, the rollout converges', async () => {
    const ports = zoneA().map((e) => e.port)
    const traffic = await startTraffic(ports, SNI, { held: 3 })
    const bump = () => {
      const text = sys.repo.files.get(INGRESS_B)!.replace(/instances: \d+/, `instances: ${2 + k++}`)
      return sys.commit({ [INGRESS_B]: text }, 'rollout during a node loss')
    }
    const leader = await cluster.streamLeader(`KV_${Bucket.Tables}`)
    const other = (leader + 1) % 3
    let leader2 = -1
    let during = ''
    try {
      await cluster.kill(other)
      await bump()
      await new Promise((r) => setTimeout(r, 4000))
      await cluster.restart(other)
      leader2 = await cluster.streamLeader(`KV_${Bucket.Tables}`)
      await cluster.kill(leader2)
      during = await bump()
      // converged while the node is still down: every egress applied and the reconciler saw it, although
      // connections, consumers and stream leaders moved between the two nodes left
      await waitConverged(during, 'commit during the stream leader loss', 60_000)
    } finally {
      if (!cluster.nodes[other]!.running) await cluster.restart(other)
      if (leader2 >= 0 && !cluster.nodes[leader2]!.running) await cluster.restart(leader2)
    }
    expect(during).not.toBe('')
    await stopLosingNothing(traffic, { everyPortServed: true })
    for (const e of zoneA()) expect((await fetch(`${e.admin}/ready`)).status).toBe(200)
    await expectNoUnchangedRepublication()
  })

  it('faults - all NATS nodes restart with their store: egresses keep serving, a restarted egress serves its saved table', async () => {
    const before = await settledGenerations()
    await expectNoUnchangedRepublication()
    const ports = zoneA().map((e) => e.port)
    const traffic = await startTraffic(ports.slice(0, 2), SNI, { held: 2 })
    await cluster.killAll()
    // while NATS is down: an egress killed and started again serves the table it saved, before NATS is back
    const a3 = zoneA()[2]!
    process.kill(a3.proc.pid, 'SIGKILL')
    await a3.proc.exited
    // What the zone's egresses saved (they share the state dir): the settled generation (no commit since). The
    // file is written asynchronously after each swap, so wait until it holds what the live ones serve.
    const served = Math.max(...(await Promise.all(zoneA().slice(0, 2).map(configDump))).map((d) => d.generation ?? 0))
    expect(served).toBe(before[2])
    const stateDir = join(sys.stateDir, 'zone-a')
    await vi.waitFor(
      async () => expect(await loadSavedTable(stateDir, 'zone-a')).toMatchObject({ generation: served }),
      {
        timeout: 5000,
      },
    )
    const saved = served
    const again = await sys.startEgress('zone-a', 'a3')
    await waitForReady(again)
    expect((await configDump(again)).generation).toBe(saved)
    ;(await openTls(again.port, SNI)).socket.destroy()
    await new Promise((r) => setTimeout(r, 1000))
    await cluster.restartAll()
    await stopLosingNothing(traffic)
    // every egress still serves the generation it served before: the case started from a settled zone and no
    // commit was made, so nothing may have been published (issue #12: a restart is no reason for a new generation)
    expect(await generations()).toEqual(before)
    await expectNoUnchangedRepublication()
  })

  /** What the zone served before the stores were wiped: the reconciler's republication must go past it. */
  let beforeWipe: (number | null)[] = []
  it('faults - all NATS nodes restart with wiped stores: egresses keep serving their tables (data-plane side)', async () => {
    const before = await settledGenerations()
    await expectNoUnchangedRepublication() // the last look at the history before the wipe loses it
    beforeWipe = before
    const ports = zoneA().map((e) => e.port)
    const traffic = await startTraffic(ports, SNI, { held: 3 })
    await cluster.restartAll({ wipe: true })
    await new Promise((r) => setTimeout(r, 3000))
    await stopLosingNothing(traffic)
    for (const e of zoneA()) {
      expect((await fetch(`${e.admin}/ready`)).status).toBe(200)
      const d = await configDump(e)
      expect(d.state).toMatch(/serving|applying/)
    }
    // no egress lost or went back from its table; the reconciler may already have recreated the layout and
    // republished (the next case follows that): the one newer generation allowed is that republication, + 1
    const after = await generations()
    for (const [i, g] of after.entries()) expect([before[i], before[i]! + 1], `egress ${i}`).toContain(g)
  })

  it('faults - after the wiped stores the reconciler recreates the R3 layout, republishes every zone and a commit converges again', async () => {
    const before = beforeWipe
    expect(before.length).toBeGreaterThan(0)
    // the reconciler noticed the lost layout and republished once: each egress takes the next generation (the
    // table's content changed too: the recreated builtin mesh CA); never a second one without a commit
    await vi.waitFor(
      async () => {
        const now = await generations()
        expect(
          now.every((g, i) => typeof g === 'number' && g >= (before[i] ?? 0) + 1),
          JSON.stringify(now),
        ).toBe(true)
      },
      { timeout: 60_000, interval: 1000 },
    )
    expect(await generations()).toEqual(before.map((g) => (g ?? 0) + 1))
    const jsm = await jetstreamManager(sys.nc, { timeout: 3000, checkAPI: false })
    for (const stream of [`KV_${Bucket.Tables}`, `KV_${Bucket.Leases}`, EVENTS_STREAM])
      expect((await jsm.streams.info(stream)).config.num_replicas, stream).toBe(3)
    // and the control plane works end to end again: a new commit converges (events, lease, rollout tracking)
    await commitAndConverge('after wipe', 90_000)
    await expectNoUnchangedRepublication()
  })
})
