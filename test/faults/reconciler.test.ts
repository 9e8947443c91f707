import { type ChildProcess, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { type KV, Kvm } from '@nats-io/kv'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import git from 'isomorphic-git'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { Bucket, commitSubject, EVENTS_STREAM, rolloutSubject, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { CLI_PATH, reconcilerArgs } from '../helpers/cli.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsCluster, startNatsCluster } from '../helpers/nats-cluster.js'
import { egressYaml, externalYaml, MESH, tempDir } from '../helpers/reconciler-world.js'

/**
 * Control-plane faults on a real 3-node nats-server cluster (R3) with real `zonegate reconciler` processes on a
 * real Git repository of many zones:
 * - kill -9 of the leader while it publishes a commit to every zone: the standby takes the lease and completes
 *   the commit; no zone gets a generation twice, none skips one (KV history of every zone);
 * - a commit that removes a zone's files: refused without `--allow-empty` (the table stays), applied (the key is
 *   deleted) by a reconciler started with it;
 * - a force-pushed branch: the reconciler publishes the tree Git now has, each zone's generation one higher.
 */
const cli = CLI_PATH
const ZONES = 120
const zone = (i: number) => `zone-${String(i).padStart(3, '0')}`
const TTL = '2s'

let cluster: NatsCluster
let repo: GitRepo
let dir: Awaited<ReturnType<typeof tempDir>>
let nc: NatsConnection
let tables: KV
const children: ChildProcess[] = []
const output = new Map<ChildProcess, string>()

function files(address: string): Record<string, string> {
  const f: Record<string, string> = { 'meshes/default.yaml': MESH }
  for (let i = 0; i < ZONES; i++) {
    f[`zones/${zone(i)}/egress.yaml`] = egressYaml(zone(i), 10_000 + i)
    f[`zones/${zone(i)}/external.yaml`] = externalYaml(`svc-${i}`, address, zone(i))
  }
  return f
}

function spawnReconciler(id: string, extra: string[] = []): ChildProcess {
  const c = spawn(
    process.execPath,
    [
      cli,
      ...reconcilerArgs({
        repo: repo.dir,
        nats: cluster.urls,
        interval: '500ms',
        leaseTtl: TTL,
        cacheDir: dir.path,
        id,
      }),
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } },
  )
  output.set(c, '')
  const keep = (d: Buffer) => output.set(c, ((output.get(c) ?? '') + d.toString()).slice(-20_000))
  c.stdout?.on('data', keep)
  c.stderr?.on('data', keep)
  children.push(c)
  return c
}

const stop = async (c: ChildProcess, signal: NodeJS.Signals) => {
  if (c.exitCode !== null || c.signalCode !== null) return
  const done = new Promise((r) => c.once('exit', r))
  c.kill(signal)
  await done
}

async function current(z: string): Promise<PublishedZoneTable | undefined> {
  const e = await tables.get(tableKey(z))
  return e && e.operation === 'PUT' ? e.json<PublishedZoneTable>() : undefined
}

async function generationsOf(z: string): Promise<number[]> {
  const out: number[] = []
  for await (const e of await tables.history({ key: tableKey(z) }))
    if (e.operation === 'PUT') out.push(e.json<PublishedZoneTable>().generation)
  return out
}

async function allAt(revision: string): Promise<number> {
  let n = 0
  for (let i = 0; i < ZONES; i++) if ((await current(zone(i)))?.revision === revision) n++
  return n
}

beforeAll(async () => {
  cluster = await startNatsCluster()
  dir = await tempDir('zonegate-faults-rec-')
  repo = await createGitRepo({ dir: join(dir.path, 'repo'), files: files('127.0.0.1:18080') })
  nc = await connect({ servers: cluster.urls })
})

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  await nc?.close()
  await cluster?.stop()
  await dir?.remove()
})

describe('faults: reconciler', () => {
  let r2: ChildProcess
  let first: string

  it('faults - kill -9 of the leader mid-publish: the standby completes the commit, generations neither repeat nor skip', async () => {
    const r1 = spawnReconciler('r1')
    first = await repo.head()
    await vi.waitFor(
      async () => {
        tables ??= await new Kvm(jetstream(nc)).open(Bucket.Tables)
        expect(await allAt(`main@sha1:${first}`)).toBe(ZONES)
      },
      { timeout: 60_000, interval: 500 },
    )
    r2 = spawnReconciler('r2')
    await new Promise((r) => setTimeout(r, 1500)) // r2 connected, standing by
    const second = await repo.commitAll(files('127.0.0.1:18081'), 'every zone changes')
    const rev2 = `main@sha1:${second}`
    // kill the leader as soon as its first zone of the new commit is visible
    await vi.waitFor(
      async () => {
        if ((await current(zone(0)))?.revision !== rev2 && (await current(zone(ZONES - 1)))?.revision !== rev2)
          throw new Error('not publishing yet')
      },
      { timeout: 30_000, interval: 10 },
    )
    await stop(r1, 'SIGKILL')
    const atKill = await allAt(rev2)
    await vi.waitFor(async () => expect(await allAt(rev2)).toBe(ZONES), { timeout: 60_000, interval: 500 })
    for (let i = 0; i < ZONES; i++) expect(await generationsOf(zone(i)), zone(i)).toEqual([1, 2])
    // the kill happened while zones were still unpublished (otherwise the standby had nothing to complete)
    expect(atKill, output.get(r2)).toBeLessThan(ZONES)
    // issue #16.4: the standby also sent the events of the zones r1 wrote before it died (r1 sends them only
    // after its last write): every zone's rollout.published for generation 2, and commit.published listing all
    const jsm = await jetstreamManager(nc)
    const last = async (subject: string) => {
      try {
        return (await jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: subject }))?.json<{
          generation?: number
          revision?: string
          zones?: { zone: string; generation: number }[]
        }>()
      } catch {
        return undefined
      }
    }
    await vi.waitFor(
      async () => {
        const published = await last(commitSubject(second, 'published'))
        expect(published?.zones?.length, 'zones in commit.published').toBe(ZONES)
      },
      { timeout: 30_000, interval: 500 },
    )
    const missing: string[] = []
    for (let i = 0; i < ZONES; i++) {
      const e = await last(rolloutSubject(zone(i), 'published'))
      if (e?.revision !== rev2 || e.generation !== 2) missing.push(zone(i))
    }
    expect(missing, 'zones without rollout.published of the commit').toEqual([])
  })

  it('faults - a commit removing a zone’s files is refused without --allow-empty and applied with it', async () => {
    const gone = zone(ZONES - 1)
    const before = await current(gone)
    const sha = await repo.commit(
      { [`zones/${gone}/egress.yaml`]: null, [`zones/${gone}/external.yaml`]: null },
      'remove a zone',
    )
    await vi.waitFor(() => expect(output.get(r2)).toMatch(/EmptyZoneRefused|emptied|allow-empty/i), {
      timeout: 30_000,
      interval: 250,
    })
    expect((await current(gone))?.generation).toBe(before?.generation)
    await stop(r2, 'SIGTERM')
    r2 = spawnReconciler('r3', ['--allow-empty'])
    await vi.waitFor(async () => expect(await current(gone)).toBeUndefined(), { timeout: 60_000, interval: 500 })
    // the other zones did not change
    expect((await current(zone(0)))?.revision).not.toBe(`main@sha1:${sha}`)
    expect(await generationsOf(zone(0))).toEqual([1, 2])
  })

  it('faults - a force-pushed branch: the tree Git now has is published, one generation up per changed zone', async () => {
    await git.writeRef({ fs, dir: repo.dir, gitdir: repo.gitdir, ref: 'refs/heads/main', value: first, force: true })
    const rev = `main@sha1:${first}`
    await vi.waitFor(async () => expect(await allAt(rev)).toBe(ZONES), { timeout: 60_000, interval: 500 })
    for (let i = 0; i < ZONES - 1; i++) expect(await generationsOf(zone(i)), zone(i)).toEqual([1, 2, 3])
    // the removed zone comes back, its generation continuing
    const back = await generationsOf(zone(ZONES - 1))
    expect(back.at(-1)).toBe(3)
  })
})
