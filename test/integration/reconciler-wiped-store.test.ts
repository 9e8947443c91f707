import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import type { RunningReconciler } from '../../reconciler/main.js'
import { isStreamNotFound } from '../../reconciler/transport/nats-errors.js'
import { Bucket, EVENTS_STREAM, LEASE_KEY, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { baseFiles, startReconciler, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * A nats-server restarted with a wiped store under a running reconciler (issue #16.1), all real: the server
 * process is killed, its store directory deleted, and it is started again on the same port. The reconciler
 * must notice the missing layout, recreate the buckets and the stream, take the lease again, create a new
 * builtin mesh CA (the old one's key was in the wiped store) and republish every zone, with generations that
 * continue; `/readyz` must never answer 200 while the tables are missing; an egress started afterwards with an
 * empty state dir gets its table.
 */
let nats: NatsServer
let repo: GitRepo
let dir: Awaited<ReturnType<typeof tempDir>>
let reconciler: RunningReconciler & { lines: Record<string, unknown>[] }
let nc: NatsConnection | undefined
let egress: EgressHandle | undefined
let stateDir: string

async function table(zone: string): Promise<PublishedZoneTable | undefined> {
  return (await tableOrMissing(zone)) ?? undefined
}

/** The zone's table; `null` when the bucket or the key is definitely missing; undefined when NATS did not answer. */
async function tableOrMissing(zone: string): Promise<PublishedZoneTable | null | undefined> {
  const c = nc as NatsConnection
  try {
    const e = await (await new Kvm(jetstream(c, { timeout: 2000 })).open(Bucket.Tables)).get(tableKey(zone))
    return e?.operation === 'PUT' ? e.json<PublishedZoneTable>() : null
  } catch (err) {
    return isStreamNotFound(err) ? null : undefined
  }
}

beforeAll(async () => {
  nats = await startNatsServer()
  dir = await tempDir('zonegate-wiped-')
  stateDir = await mkdtemp(join(tmpdir(), 'zonegate-wiped-egress-'))
  repo = await createGitRepo({ dir: join(dir.path, 'repo'), files: baseFiles() })
  reconciler = await startReconciler({
    repo: repo.dir,
    nats: nats.url,
    cacheDir: dir.path,
    id: 'rec',
    intervalMs: 500,
    leaseTtlMs: 1500,
  })
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
})

afterAll(async () => {
  await egress?.shutdown()
  await reconciler?.stop()
  await nc?.close()
  await nats?.stop()
  await dir?.remove()
  await rm(stateDir, { recursive: true, force: true })
})

describe('reconciler wiped store', () => {
  it('wiped store - the reconciler recreates the layout and the CA, leads again, republishes every zone; /readyz is never 200 without tables', async () => {
    const sha = await repo.head()
    const rev = `main@sha1:${sha}`
    await waitUntil(async () => (await table('zone-c'))?.revision === rev || undefined, 20_000, 'first publish')
    const before = await table('zone-a')
    expect(before?.generation).toBe(1)
    const caBefore = before?.meshes?.find((m) => m.name === 'default')?.caCerts[0]
    expect(caBefore).toMatch(/BEGIN CERTIFICATE/)
    const readyz = `${reconciler.httpUrl}/readyz`
    await waitUntil(async () => (await fetch(readyz)).status === 200 || undefined, 10_000, 'ready after the first pass')

    await nats.kill()
    await rm(nats.storeDir, { recursive: true, force: true })
    await nats.restart()
    const wipedAt = Date.now()

    // Sample /readyz while the reconciler recovers: a 200 while the tables are missing is a lie.
    const lies: string[] = []
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const status = await fetch(readyz)
          .then((r) => r.status)
          .catch(() => 0)
        if (status === 200 && (await tableOrMissing('zone-a')) === null) lies.push(`${Date.now() - wipedAt} ms`)
        await new Promise((r) => setTimeout(r, 50))
      }
    })()
    try {
      await waitUntil(
        async () => {
          for (const z of ['zone-a', 'zone-b', 'zone-c']) if ((await table(z))?.revision !== rev) return undefined
          return true
        },
        30_000,
        `every zone republished (reconciler log since the wipe: ${JSON.stringify(
          reconciler.lines
            .filter((l) => (l.time as number) >= wipedAt - 2000)
            .map((l) => [l.time, l.msg, l.err ? (l.err as { message?: string }).message : ''])
            .slice(-40),
        )}; test client closed: ${nc?.isClosed()})`,
      )
    } finally {
      sampling = false
      await sampler
    }
    const recoveredMs = Date.now() - wipedAt
    expect(lies, 'readyz answered 200 while the tables were missing').toEqual([])

    const after = await table('zone-a')
    // generations continue from what the reconciler held (an egress admits any generation after a recreated bucket)
    expect(after?.generation).toBe(2)
    // the builtin CA's key was in the wiped store: a new CA was created and the tables carry it
    const caAfter = after?.meshes?.find((m) => m.name === 'default')?.caCerts[0]
    expect(caAfter).toMatch(/BEGIN CERTIFICATE/)
    expect(caAfter).not.toBe(caBefore)
    const c = nc as NatsConnection
    const ca = await new Kvm(jetstream(c)).open(Bucket.Ca)
    expect(
      (
        await ca.keys().then(async (it) => {
          const k: string[] = []
          for await (const x of it) k.push(x)
          return k
        })
      ).length,
    ).toBeGreaterThan(0)
    // the lease is held again, the events stream exists and has the republish
    const leases = await new Kvm(jetstream(c)).open(Bucket.Leases)
    await waitUntil(
      async () => (await leases.get(LEASE_KEY))?.string() === 'rec' || undefined,
      10_000,
      'the lease is held again',
    )
    expect(reconciler.isLeader()).toBe(true)
    const jsm = await jetstreamManager(c)
    const published = await jsm.streams.getMessage(EVENTS_STREAM, {
      last_by_subj: `zonegate.events.commit.${sha}.published`,
    })
    expect(
      published
        ?.json<{ zones: { zone: string }[] }>()
        .zones.map((z) => z.zone)
        .sort(),
    ).toEqual(['zone-a', 'zone-b', 'zone-c'])
    await waitUntil(async () => (await fetch(readyz)).status === 200 || undefined, 10_000, 'ready again')
    console.log(`wiped store: every zone republished ${recoveredMs} ms after the server came back`)

    // a new egress with an empty state dir gets its table
    egress = runEgress({
      nats: { servers: [nats.url], stateDir, heartbeatMs: 500 },
      zone: 'zone-a',
      name: 'ze-zone-a',
      instance: 'fresh',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      logger: pino({ level: 'silent' }),
      graceMs: 200,
    })
    const { admin } = await Promise.race([
      egress.ready,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('egress not ready in 20 s')), 20_000)),
    ])
    const dump = (await (await fetch(`http://127.0.0.1:${admin?.port}/config_dump`)).json()) as {
      generation: number
    }
    expect(dump.generation).toBe(2)
  })

  it('wiped store - with a standby: one leader republishes, the status is the leader’s, both are ready again', async () => {
    const standby = await startReconciler({
      repo: repo.dir,
      nats: nats.url,
      cacheDir: dir.path,
      id: 'sb',
      intervalMs: 500,
      leaseTtlMs: 1500,
    })
    try {
      expect(standby.isLeader()).toBe(false)
      const rev = `main@sha1:${await repo.head()}`
      await nats.kill()
      await rm(nats.storeDir, { recursive: true, force: true })
      await nats.restart()
      await waitUntil(
        async () => {
          for (const z of ['zone-a', 'zone-b', 'zone-c']) if ((await table(z))?.revision !== rev) return undefined
          return true
        },
        30_000,
        'every zone republished',
      ).catch((err) => {
        const lines = (r: typeof standby) =>
          JSON.stringify(
            r.lines
              .filter((l) => (l.level as number) >= 30)
              .slice(-14)
              .map((l) => [l.msg, l.err ? (l.err as { message?: string }).message : '']),
          )
        throw new Error(
          `${err.message}: rec=${reconciler.isLeader()} sb=${standby.isLeader()} rec: ${lines(reconciler)} sb: ${lines(standby)}`,
        )
      })
      const c = nc as NatsConnection
      const leases = await new Kvm(jetstream(c)).open(Bucket.Leases)
      // exactly one leader, and the key names it (read both until they agree: a takeover may be in flight)
      const [leader, other] = await waitUntil(
        async () => {
          const key = (await leases.get(LEASE_KEY))?.string()
          if (reconciler.isLeader() && !standby.isLeader() && key === reconciler.id) return [reconciler, standby]
          if (standby.isLeader() && !reconciler.isLeader() && key === standby.id) return [standby, reconciler]
          return undefined
        },
        15_000,
        'exactly one leader, named by the lease key',
      )
      const holder = leader.id
      for (const r of [leader, other])
        await waitUntil(
          async () => (await fetch(`${r.httpUrl}/readyz`)).status === 200 || undefined,
          15_000,
          `${r.id} ready again`,
        )
      // the standby never wrote the status: it is the leader's
      const status = await new Kvm(jetstream(c)).open(Bucket.Status)
      await waitUntil(
        async () => (await status.get('reconciler'))?.json<{ reconciler: string }>().reconciler === holder || undefined,
        10_000,
        'the status is written by the lease holder',
      )
    } finally {
      await standby.stop()
    }
  })
})
