import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import { rolloutAppliedEvent } from '../../reconciler/core/events.js'
import type { RunningReconciler } from '../../reconciler/main.js'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import { emitEvent } from '../../reconciler/transport/nats-publisher.js'
import type { InstanceHeartbeat, ZonegateEvent } from '../../schemas/events.js'
import type { ReconcilerStatus } from '../../schemas/status.js'
import { commitSubject, EVENTS_STREAM, instanceKey, rolloutSubject, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable, ZoneTable } from '../../schemas/table.js'
import { CLI_PATH, reconcilerArgs } from '../helpers/cli.js'
import { tableOf } from '../helpers/egress-fixtures.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { egressYaml, externalYaml, MESH, startReconciler, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * Rollouts across a failover (issue #12.4), all real NATS and processes:
 * - a reconciler process is killed (SIGKILL) while a rollout it published is in flight; the standby that takes
 *   the lease follows that rollout, so `rollout.<zone>.converged` and `commit.<sha>.converged` still come when
 *   the instance applies the table;
 * - an egress whose `applied` event cannot be stored (the events stream is gone) keeps it queued and sends it
 *   when the stream is back.
 */
const cli = CLI_PATH
const silent = pino({ level: 'silent' })

async function stored(bus: Bus, subject: string): Promise<ZonegateEvent | undefined> {
  try {
    return (await bus.jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: subject }))?.json<ZonegateEvent>()
  } catch {
    return undefined
  }
}

describe('reconciler rollout failover', () => {
  let nats: NatsServer
  let bus: Bus
  let repo: GitRepo
  let dir: Awaited<ReturnType<typeof tempDir>>
  let child: ChildProcess | undefined
  let childOut = ''
  let standby: (RunningReconciler & { lines: Record<string, unknown>[] }) | undefined
  let beating: NodeJS.Timeout | undefined

  beforeAll(async () => {
    expect(existsSync(cli), 'run `npm run build` first').toBe(true)
    nats = await startNatsServer()
    dir = await tempDir('zonegate-rollout-failover-')
    repo = await createGitRepo({
      dir: join(dir.path, 'repo'),
      files: {
        'meshes/default.yaml': MESH,
        'zones/zone-a.yaml': egressYaml('zone-a', 10002),
        'external/a.yaml': externalYaml('a', '127.0.0.1:18080', 'zone-a'),
      },
    })
    bus = await connectBus({ servers: [nats.url], name: 'test', log: silent })
    await ensureNatsLayout(bus, { leasesTtlMs: 1500 })
  })
  afterAll(async () => {
    if (beating) clearInterval(beating)
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await standby?.stop()
    await bus?.close()
    await nats?.stop()
    await dir?.remove()
  })

  it('rollout failover - the new lease holder follows the rollout the killed one left in flight', async () => {
    // one simulated egress instance of zone-a: heartbeats every 500 ms with the digest it serves
    let serving: PublishedZoneTable | undefined
    const key = instanceKey('zone-a', 'ze-zone-a', 'i1')
    const beat = () => {
      const hb: InstanceHeartbeat = {
        state: serving ? 'serving' : 'awaitingTable',
        ...(serving ? { generation: serving.generation, digest: serving.digest } : {}),
        heartbeatMs: 500,
        time: new Date().toISOString(),
      }
      return bus.kv.instances.put(key, JSON.stringify(hb)).catch(() => 0)
    }
    beating = setInterval(() => void beat(), 500)
    const apply = async () => {
      const t = (await bus.kv.tables.get(tableKey('zone-a')))?.json<PublishedZoneTable>() as PublishedZoneTable
      serving = t
      await emitEvent(
        bus,
        rolloutAppliedEvent({
          revision: t.revision,
          time: new Date(),
          zone: 'zone-a',
          egress: 'ze-zone-a',
          instance: 'i1',
          generation: t.generation,
          digest: t.digest,
          swapMs: 1,
        }),
      )
      await beat()
    }

    child = spawn(
      process.execPath,
      [
        cli,
        ...reconcilerArgs({
          repo: repo.dir,
          nats: [nats.url],
          interval: '300ms',
          leaseTtl: '1500ms',
          cacheDir: dir.path,
          id: 'first',
        }),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } },
    )
    const keep = (d: Buffer) => {
      childOut = (childOut + d.toString()).slice(-20_000)
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    const sha1 = await repo.head()
    await waitUntil(
      async () => (await stored(bus, commitSubject(sha1, 'published'))) || undefined,
      20_000,
      `first publishes (${childOut.slice(-2000)})`,
    )
    await apply()
    await waitUntil(
      async () => (await stored(bus, commitSubject(sha1, 'converged'))) || undefined,
      10_000,
      'c1 converged',
    )

    // a second commit: published, the instance has not applied it yet; the leader wrote the rollout in its status
    const sha2 = await repo.commit({ 'external/a.yaml': externalYaml('a', '127.0.0.1:18081', 'zone-a') })
    await waitUntil(
      async () => {
        const s = (await bus.kv.status.get('reconciler'))?.json<ReconcilerStatus>()
        const r = s?.zones.find((z) => z.zone === 'zone-a')?.rollout
        return (r?.revision === `main@sha1:${sha2}` && r.state === 'progressing') || undefined
      },
      20_000,
      `the rollout of the second commit in progress (${childOut.slice(-2000)})`,
    )
    child.kill('SIGKILL')
    standby = await startReconciler({
      repo: repo.dir,
      nats: nats.url,
      cacheDir: dir.path,
      id: 'second',
      leaseTtlMs: 1500,
      intervalMs: 300,
    })
    await waitUntil(() => standby?.isLeader() || undefined, 10_000, 'the standby leads')
    await waitUntil(
      () => standby?.lines.some((l) => l.msg === 'following the rollouts the previous lease holder left') || undefined,
      10_000,
      'the new holder resumes the rollout',
    )
    await apply()
    const converged = await waitUntil(
      async () => (await stored(bus, commitSubject(sha2, 'converged'))) || undefined,
      10_000,
      'commit 2 converged after the failover',
    )
    expect(converged).toMatchObject({ type: 'commit.converged', zones: ['zone-a'] })
    expect(await stored(bus, rolloutSubject('zone-a', 'converged'))).toMatchObject({
      revision: `main@sha1:${sha2}`,
      generation: 2,
      instances: ['ze-zone-a/i1'],
    })
    // the second holder published nothing of its own: the rollout is the first holder's
    expect((await bus.kv.tables.get(tableKey('zone-a')))?.json<PublishedZoneTable>().generation).toBe(2)
  })
})

describe('egress applied events across a NATS gap', () => {
  let nats: NatsServer
  let bus: Bus
  let egress: EgressHandle | undefined
  let stateDir: string

  beforeAll(async () => {
    nats = await startNatsServer()
    stateDir = await mkdtemp(join(tmpdir(), 'zonegate-applied-queue-'))
    bus = await connectBus({ servers: [nats.url], name: 'test', log: silent })
    await ensureNatsLayout(bus)
  })
  afterAll(async () => {
    await egress?.shutdown()
    await bus?.close()
    await nats?.stop()
    await rm(stateDir, { recursive: true, force: true })
  })

  it('egress applied queue - an applied event that could not be stored is sent when the stream is back', async () => {
    const table = (g: number): ZoneTable => ({
      ...tableOf([{ sni: 'svc.test', upstreams: [{ port: 18080 + g }] }], g),
      revision: `main@sha1:${g.toString(16).padStart(40, '0')}`,
    })
    let rev = await bus.kv.tables.create(tableKey('zone-a'), JSON.stringify(table(1)))
    egress = runEgress({
      nats: { servers: [nats.url], stateDir, heartbeatMs: 500 },
      zone: 'zone-a',
      name: 'ze-a',
      instance: 'e1',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      logger: silent,
      graceMs: 200,
    })
    await egress.ready
    const applied = (g: number) =>
      stored(bus, `${rolloutSubject('zone-a', 'applied')}.ze-a.e1`).then((e) =>
        e && 'generation' in e && e.generation === g ? e : undefined,
      )
    await waitUntil(() => applied(1), 10_000, 'applied gen 1 stored')

    // the events stream disappears; the egress applies gen 2 and cannot store its event
    await bus.jsm.streams.delete(EVENTS_STREAM)
    rev = await bus.kv.tables.update(tableKey('zone-a'), JSON.stringify(table(2)), rev)
    const admin = `http://127.0.0.1:${(await egress.ready).admin?.port}`
    await waitUntil(
      async () => {
        const d = (await (await fetch(`${admin}/config_dump`)).json()) as {
          generation: number
          nats: { eventsQueued: number }
        }
        return (d.generation === 2 && d.nats.eventsQueued > 0) || undefined
      },
      10_000,
      'gen 2 applied, its event queued',
    )
    await ensureNatsLayout(bus) // the stream is back (empty)
    const event = await waitUntil(() => applied(2), 10_000, 'applied gen 2 stored after the gap')
    expect(event).toMatchObject({ type: 'rollout.applied', zone: 'zone-a', generation: 2, digest: table(2).digest })
  })
})
