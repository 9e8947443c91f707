import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { KvWatchEntry } from '@nats-io/kv'
import type { QueuedIterator } from '@nats-io/transport-node'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rolloutAppliedEvent, rolloutRejectedEvent } from '../../reconciler/core/events.js'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import { emitEvent } from '../../reconciler/transport/nats-publisher.js'
import type { InstanceHeartbeat, ZonegateEvent } from '../../schemas/events.js'
import { EVENTS_STREAM, instanceKey, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { CLI_PATH, runCli as runBuiltCli } from '../helpers/cli.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { egressYaml, externalYaml, MESH, startReconciler, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * Rollout tracking end to end: an in-process reconciler (short rollout timeout) on a real nats-server and a
 * real Git repository; egress instances are simulated by the test with real NATS traffic, exactly as the
 * egress does it: heartbeats in KV `zonegate-instances` and `rollout.<zone>.applied.<egress>.<instance>`
 * events for each table they take from KV `zonegate-tables`. The outcome is then read back with the BUILT
 * `zonegate rollout watch`.
 */
const cli = CLI_PATH
const TIMEOUT_MS = 1500

let nats: NatsServer
let bus: Bus
let repo: GitRepo
let dir: Awaited<ReturnType<typeof tempDir>>
const events: { subject: string; event: ZonegateEvent }[] = []

/** A simulated egress instance: heartbeats, and (when `applies`) applies every table of its zone. */
interface SimInstance {
  name: string
  /** Applies the zone's current table now (publishes `applied`, heartbeats the digest). */
  applyCurrent(): Promise<void>
  /** From now on applies every table of the zone, starting with the current one (a KV watch). */
  follow(): Promise<void>
  /** Rejects the zone's current table (publishes `rejected` with the reason). */
  rejectCurrent(reason: string): Promise<void>
  /** Graceful stop: the key is deleted. */
  stop(): Promise<void>
}

async function startInstance(
  zone: string,
  egress: string,
  instance: string,
  o: { serving?: PublishedZoneTable } = {},
): Promise<SimInstance> {
  const key = instanceKey(zone, egress, instance)
  const heartbeat = (t: PublishedZoneTable | undefined) => {
    const hb: InstanceHeartbeat = {
      state: t ? 'serving' : 'awaitingTable',
      ...(t ? { generation: t.generation, digest: t.digest } : {}),
      listen: '127.0.0.1:10002',
      admin: '127.0.0.1:9901',
      time: new Date().toISOString(),
    }
    return bus.kv.instances.put(key, JSON.stringify(hb))
  }
  const apply = async (t: PublishedZoneTable) => {
    const { revision, generation, digest } = t
    await emitEvent(
      bus,
      rolloutAppliedEvent({ revision, time: new Date(), zone, egress, instance, generation, digest, swapMs: 1 }),
    )
    await heartbeat(t)
  }
  await heartbeat(o.serving)
  let watcher: QueuedIterator<KvWatchEntry> | undefined
  return {
    name: `${egress}/${instance}`,
    async follow() {
      const w = await bus.kv.tables.watch({ key: tableKey(zone) })
      watcher = w
      void (async () => {
        for await (const e of w) if (e.operation === 'PUT') await apply(e.json<PublishedZoneTable>())
      })()
    },
    async applyCurrent() {
      const e = await bus.kv.tables.get(tableKey(zone))
      if (e?.operation === 'PUT') await apply(e.json<PublishedZoneTable>())
    },
    async rejectCurrent(reason) {
      const t = (await bus.kv.tables.get(tableKey(zone)))?.json<PublishedZoneTable>()
      if (!t) return
      const { revision, generation, digest } = t
      await emitEvent(
        bus,
        rolloutRejectedEvent({ revision, time: new Date(), zone, egress, instance, generation, digest, reason }),
      )
    },
    async stop() {
      watcher?.stop()
      await bus.kv.instances.delete(key)
    },
  }
}

const runCli = (args: string[]) => runBuiltCli([...args, '--nats', nats.url], { timeoutMs: 15_000 })

/** The last event stored on a subject of stream ZONEGATE_EVENTS, or undefined. */
async function stored(subject: string): Promise<ZonegateEvent | undefined> {
  try {
    const m = await bus.jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: subject })
    return m?.json<ZonegateEvent>()
  } catch {
    return undefined
  }
}

const seen = (subject: string) => events.find((e) => e.subject === subject)?.event

beforeAll(async () => {
  expect(existsSync(cli), 'run `npm run build` first').toBe(true)
  nats = await startNatsServer()
  dir = await tempDir('zonegate-rollout-')
  repo = await createGitRepo({
    dir: join(dir.path, 'repo.git'),
    bare: true,
    files: {
      'meshes/default.yaml': MESH,
      'zones/zone-a.yaml': egressYaml('zone-a', 10002),
      'zones/zone-b.yaml': egressYaml('zone-b', 10012),
      'external/shared.yaml': externalYaml('shared', '127.0.0.1:18080'),
      'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18081', 'zone-a'),
    },
  })
  bus = await connectBus({ servers: [nats.url], name: 'test', log: pino({ level: 'silent' }) })
  await ensureNatsLayout(bus)
  const sub = bus.nc.subscribe('zonegate.events.>')
  void (async () => {
    for await (const m of sub) events.push({ subject: m.subject, event: m.json<ZonegateEvent>() })
  })()
})

afterAll(async () => {
  await bus?.close()
  await nats?.stop()
  await dir?.remove()
})

describe('reconciler rollout', () => {
  it('reconciler rollout - converged, timeout naming the missing instance, late instances, rollout watch exit codes', async () => {
    const r = await startReconciler({
      repo: repo.dir,
      nats: nats.url,
      cacheDir: dir.path,
      rolloutTimeoutMs: TIMEOUT_MS,
    })
    const instances: SimInstance[] = []
    try {
      // 1. The first pass publishes before any egress runs: the rollout waits for instances instead of
      //    converging on nobody; egresses that start then apply the table and converge it by themselves.
      const sha1 = await repo.head()
      await waitUntil(() => r.status().lastAppliedRevision?.endsWith(sha1), 5000, 'first pass')
      expect(r.status().zones.find((z) => z.zone === 'zone-a')?.rollout).toMatchObject({
        state: 'progressing',
        current: [],
        missing: [],
      })
      instances.push(await startInstance('zone-a', 'ze-a', '1'))
      instances.push(await startInstance('zone-a', 'ze-a', '2'))
      instances.push(await startInstance('zone-b', 'ze-b', '1'))
      await waitUntil(
        () => r.status().zones.find((z) => z.zone === 'zone-a')?.rollout?.missing.length === 2,
        2000,
        'instances seen',
      )
      for (const i of instances) await i.follow()
      const converged1 = await waitUntil(
        () => seen(`zonegate.events.commit.${sha1}.converged`),
        3000,
        'commit 1 converged',
      )
      expect(converged1).toMatchObject({ type: 'commit.converged', zones: ['zone-a', 'zone-b'] })
      expect(await stored('zonegate.events.rollout.zone-a.converged')).toMatchObject({
        type: 'rollout.converged',
        revision: `main@sha1:${sha1}`,
        generation: 1,
        instances: ['ze-a/1', 'ze-a/2'],
      })
      expect(await stored(`zonegate.events.commit.${sha1}.converged`)).toMatchObject({ type: 'commit.converged' })
      await waitUntil(
        () => r.status().zones.every((z) => z.rollout?.state === 'converged'),
        2000,
        'status shows converged',
      )

      // 2. A silent instance that heartbeats the old table and never applies: zone-a times out naming it,
      //    the commit stalls; zone-b is untouched by the commit.
      const oldA = (await bus.kv.tables.get(tableKey('zone-a')))?.json<PublishedZoneTable>()
      const silent = await startInstance('zone-a', 'ze-a', '3', { serving: oldA })
      const sha2 = await repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18091', 'zone-a') })
      expect((await r.trigger())?.result).toBe('applied')
      const timeout = await waitUntil(
        () => seen('zonegate.events.rollout.zone-a.timeout'),
        TIMEOUT_MS + 2000,
        'zone-a timeout',
      )
      expect(timeout).toMatchObject({ type: 'rollout.timeout', generation: 2, missing: ['ze-a/3'] })
      const stalled = await waitUntil(() => seen(`zonegate.events.commit.${sha2}.stalled`), 1000, 'commit 2 stalled')
      expect(stalled).toMatchObject({ type: 'commit.stalled', reason: 'RolloutTimeout' })
      expect(stalled?.type === 'commit.stalled' && stalled.message).toMatch(/zone-a gen 2: no report from ze-a\/3/)
      expect(seen(`zonegate.events.commit.${sha2}.converged`)).toBeUndefined()
      await waitUntil(() => r.status().zones.find((z) => z.zone === 'zone-a')?.rollout?.state === 'timeout', 2000)
      expect(r.status().zones.find((z) => z.zone === 'zone-a')?.rollout).toMatchObject({
        generation: 2,
        current: ['ze-a/1', 'ze-a/2'],
        missing: ['ze-a/3'],
      })

      // 3. The missing instance applies later: it converges by itself and shows up in the status.
      await silent.applyCurrent()
      await waitUntil(
        () =>
          r
            .status()
            .zones.find((z) => z.zone === 'zone-a')
            ?.rollout?.current.includes('ze-a/3'),
        2000,
        'late instance current',
      )
      expect(r.lines).toContainEqual(
        expect.objectContaining({ msg: 'instance converged after the rollout', instance: 'ze-a/3', zone: 'zone-a' }),
      )
      // The status in KV (what `zonegate status` reads) has it too.
      const kvStatus = await waitUntil(async () => {
        const e = await bus.kv.status.get('reconciler')
        const s = e?.json<{ zones: { zone: string; rollout?: { current: string[] } }[] }>()
        return s?.zones.find((z) => z.zone === 'zone-a')?.rollout?.current.includes('ze-a/3') ? s : undefined
      }, 2000)
      expect(kvStatus).toBeDefined()

      // 4. A new instance that appears after convergence with an old table and never applies: a warning and
      //    `stale` in the status after the rollout timeout.
      await silent.stop()
      const sha3 = await repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18092', 'zone-a') })
      expect((await r.trigger())?.result).toBe('applied')
      await waitUntil(() => seen(`zonegate.events.commit.${sha3}.converged`), 3000, 'commit 3 converged')
      const laggard = await startInstance('zone-a', 'ze-a', '4', { serving: oldA })
      instances.push(laggard)
      await waitUntil(
        () =>
          r
            .status()
            .zones.find((z) => z.zone === 'zone-a')
            ?.rollout?.stale.includes('ze-a/4'),
        TIMEOUT_MS + 2000,
        'stale instance',
      )
      expect(r.lines).toContainEqual(
        expect.objectContaining({ msg: 'instance has not applied the current table', instance: 'ze-a/4', level: 40 }),
      )

      // 5. An instance that rejects the table stalls the commit at once (no waiting for the timeout).
      const oldB = (await bus.kv.tables.get(tableKey('zone-b')))?.json<PublishedZoneTable>()
      const rejecting = await startInstance('zone-b', 'ze-b', '2', { serving: oldB })
      instances.push(rejecting)
      const sha4 = await repo.commit({ 'external/shared.yaml': externalYaml('shared', '127.0.0.1:18083') })
      expect((await r.trigger())?.result).toBe('applied')
      const t4 = Date.now()
      await rejecting.rejectCurrent('signature invalid')
      const rejected = await waitUntil(() => seen(`zonegate.events.commit.${sha4}.stalled`), 1000, 'commit 4 stalled')
      expect(Date.now() - t4).toBeLessThan(TIMEOUT_MS)
      expect(rejected).toMatchObject({
        reason: 'RolloutRejected',
        message: 'zone zone-b gen 2: ze-b/2 rejected the table: signature invalid',
      })
      expect(seen('zonegate.events.rollout.zone-b.timeout')).toBeUndefined()

      // 6. `zonegate rollout watch` (built CLI) replays each commit from the stream: 0 converged, 1 stalled.
      const ok = await runCli(['rollout', 'watch', '--commit', sha1, '--until', 'converged', '--timeout', '10s'])
      expect(ok.stdout).toMatch(/zone-a {2}converged {2}gen 1 {2}2 instance\(s\)/)
      expect(ok.stdout).toMatch(/^converged {2}commit /m)
      expect(ok.code).toBe(0)
      const bad = await runCli(['rollout', 'watch', '--commit', sha2, '--until', 'converged', '--timeout', '10s'])
      expect(bad.stdout).toMatch(/zone-a {2}timeout {2}gen 2 {2}missing: ze-a\/3/)
      expect(bad.stdout).toMatch(/^stalled {2}commit /m)
      expect(bad.code).toBe(1)
    } finally {
      for (const i of instances) await i.stop().catch(() => {})
      await r.stop()
    }
  })
})
