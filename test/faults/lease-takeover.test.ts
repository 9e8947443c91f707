import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Bucket, LEASE_KEY } from '../../schemas/subjects.js'
import { CLI_PATH, reconcilerArgs } from '../helpers/cli.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsCluster, startNatsCluster } from '../helpers/nats-cluster.js'
import { baseFiles, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * Lease takeover after `kill -9` of the leader (issue #16.6), with real `zonegate reconciler` processes on a real
 * 3-node nats-server 2.9.10 cluster (the layout is R3 there): for each lease timing, a leader and a standby are
 * started, the leader is killed once the standby stands by and the lease was renewed, and the time until the
 * standby holds the key is measured. Bounds: a takeover comes after the key aged out (no earlier than
 * TTL − renew: a killed process cannot release) and within TTL + one standby poll + slack for the server's
 * expiry timer and a loaded machine. The figures are printed (docs/operations.md "Reconciler failover").
 */
const cli = CLI_PATH

let cluster: NatsCluster
let repo: GitRepo
let dir: Awaited<ReturnType<typeof tempDir>>
let nc: NatsConnection
const children: ChildProcess[] = []
const output = new Map<ChildProcess, string>()

function spawnReconciler(id: string, ttl: string, renew?: string): ChildProcess {
  const c = spawn(
    process.execPath,
    [
      cli,
      ...reconcilerArgs({
        repo: repo.dir,
        nats: cluster.urls,
        interval: '5s',
        leaseTtl: ttl,
        ...(renew ? { leaseRenew: renew } : {}),
        cacheDir: dir.path,
        id,
      }),
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function holder(): Promise<string | undefined> {
  try {
    const e = await (await new Kvm(jetstream(nc, { timeout: 1000 })).open(Bucket.Leases)).get(LEASE_KEY)
    return e?.operation === 'PUT' ? e.string() : undefined
  } catch {
    return undefined
  }
}

const waitFor = <T>(what: string, fn: () => Promise<T | undefined>, ms: number, every = 20): Promise<T> =>
  waitUntil(fn, ms, what, every)

const kill = async (c: ChildProcess, signal: NodeJS.Signals) => {
  if (c.exitCode !== null || c.signalCode !== null) return
  const done = new Promise((r) => c.once('exit', r))
  c.kill(signal)
  await done
}

/** One takeover: returns ms from the leader's kill -9 to the standby holding the key. */
async function takeover(round: string, ttl: string, ttlMs: number, renew?: string): Promise<number> {
  const a = spawnReconciler(`${round}-a`, ttl, renew)
  await waitFor(`${round}-a leads`, async () => ((await holder()) === `${round}-a` ? true : undefined), 30_000)
  const b = spawnReconciler(`${round}-b`, ttl, renew)
  await waitFor(
    `${round}-b stands by`,
    async () => ((output.get(b) ?? '').includes('standby: another reconciler holds the lease') ? true : undefined),
    30_000,
    50,
  )
  await sleep(ttlMs / 2) // at least one renewal happened; the kill lands at a random point of a renew period
  await kill(a, 'SIGKILL')
  const t0 = Date.now()
  await waitFor(`${round}-b takes over`, async () => ((await holder()) === `${round}-b` ? true : undefined), ttlMs * 3)
  const ms = Date.now() - t0
  await kill(b, 'SIGTERM') // releases the lease
  await waitFor(`${round} released`, async () => ((await holder()) === undefined ? true : undefined), 10_000)
  return ms
}

beforeAll(async () => {
  cluster = await startNatsCluster()
  dir = await tempDir('zonegate-faults-lease-')
  repo = await createGitRepo({ dir: join(dir.path, 'repo'), files: baseFiles() })
  nc = await connect({ servers: cluster.urls })
})

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  await nc?.close()
  await cluster?.stop()
  await dir?.remove()
})

describe('faults: lease takeover', () => {
  it('faults - kill -9 of the leader: the standby takes over one lease TTL later (2 s and 5 s TTL, 3-node R3)', async () => {
    const figures: Record<string, number[]> = {}
    for (const [ttl, ttlMs, renew, renewMs, rounds] of [
      ['2s', 2000, undefined, 667, 4],
      ['5s', 5000, '1s', 1000, 2],
    ] as const) {
      // the bucket TTL is the lease TTL: recreate the bucket for each timing (no reconciler runs now)
      await jetstreamManager(nc)
        .then((jsm) => jsm.streams.delete(`KV_${Bucket.Leases}`))
        .catch(() => {})
      const label = `ttl ${ttl}, renew ${renew ?? `${renewMs}ms (ttl/3)`}`
      figures[label] = []
      for (let i = 0; i < rounds; i++) {
        const ms = await takeover(`t${ttlMs}-${i}`, ttl, ttlMs, renew)
        figures[label]?.push(ms)
        expect(ms, label).toBeGreaterThanOrEqual(ttlMs - renewMs - 250)
        expect(ms, label).toBeLessThan(ttlMs + ttlMs / 5 + 2000)
      }
      const info = await (await new Kvm(jetstream(nc)).open(Bucket.Leases)).status()
      expect(info.ttl).toBe(ttlMs)
      expect(info.streamInfo.config.num_replicas).toBe(3)
    }
    console.log(`lease takeover after kill -9 (ms): ${JSON.stringify(figures)}`)
  }, 300_000)
})
