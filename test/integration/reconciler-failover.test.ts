import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_PATH, reconcilerArgs } from '../helpers/cli.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { baseFiles, externalYaml, probe, startReconciler, tableHistory, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

const cli = CLI_PATH
const TTL_MS = 2000

describe('reconciler failover', () => {
  let server: NatsServer
  let repo: GitRepo
  let dir: Awaited<ReturnType<typeof tempDir>>
  let child: ChildProcess | undefined
  let child2: ChildProcess | undefined
  let childOut = ''

  beforeAll(async () => {
    // dist/ is built by vitest's global setup (test/helpers/global-build.ts)
    server = await startNatsServer()
    dir = await tempDir('zonegate-rec-failover-')
    repo = await createGitRepo({ dir: join(dir.path, 'repo'), files: baseFiles() })
  })
  afterAll(async () => {
    for (const c of [child, child2]) if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    await server?.stop()
    await dir?.remove()
  })

  const spawnChild = (id: string): ChildProcess => {
    const c = spawn(
      process.execPath,
      [
        cli,
        ...reconcilerArgs({
          repo: repo.dir,
          nats: [server.url],
          interval: '500ms',
          leaseTtl: `${TTL_MS}ms`,
          cacheDir: dir.path,
          id,
        }),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } },
    )
    const keep = (d: Buffer) => {
      childOut = (childOut + d.toString()).slice(-20_000)
    }
    c.stdout?.on('data', keep)
    c.stderr?.on('data', keep)
    return c
  }

  it('reconciler failover - the child process leads, the standby publishes nothing, then takes over after SIGKILL', async () => {
    child = spawnChild('child')
    const p = await probe(server.url)
    try {
      const sha1 = await repo.head()
      await waitUntil(
        async () => (await tableHistory(p.tables, 'zone-a').catch(() => [])).length === 1 || undefined,
        10_000,
        `child publishes (output: ${childOut})`,
      )
      const standby = await startReconciler({
        repo: repo.dir,
        nats: server.url,
        cacheDir: dir.path,
        id: 'standby',
        leaseTtlMs: TTL_MS,
        intervalMs: 500,
      })
      try {
        expect(standby.isLeader()).toBe(false)
        // The stored status says Ready=True for the child's revision; the standby never read it (issue #12.3).
        expect(standby.status().conditions.find((c) => c.type === 'Ready')).toMatchObject({
          status: 'Unknown',
          reason: 'Standby',
        })
        // The leader (child) publishes a new commit; the standby publishes nothing of its own.
        const sha2 = await repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18401', 'zone-a') })
        await waitUntil(
          async () =>
            (await tableHistory(p.tables, 'zone-a')).at(-1)?.table?.revision === `main@sha1:${sha2}` || undefined,
          5000,
          'child publishes the second commit',
        )
        expect(standby.isLeader()).toBe(false)
        expect(standby.lines.some((l) => l.msg === 'zone published')).toBe(false)
        expect(sha1).not.toBe(sha2)

        child.kill('SIGKILL')
        const killedAt = Date.now()
        await waitUntil(() => standby.isLeader() || undefined, TTL_MS + 3000, 'standby takes the lease')
        const takeoverMs = Date.now() - killedAt
        expect(takeoverMs).toBeLessThan(TTL_MS + 1000)

        // The new leader re-reads the inventory (nothing republished) and publishes the next commit.
        const sha3 = await repo.commit({ 'external/b-only.yaml': externalYaml('b-only', '127.0.0.1:18402', 'zone-b') })
        expect(await standby.trigger()).toMatchObject({ result: 'applied', sha: sha3 })
        expect((await tableHistory(p.tables, 'zone-a')).map((e) => e.table?.generation)).toEqual([1, 2])
        expect((await tableHistory(p.tables, 'zone-b')).map((e) => e.table?.generation)).toEqual([1, 2])
        expect(standby.status().reconciler).toBe('standby')
      } finally {
        await standby.stop()
      }
    } finally {
      await p.close()
    }
  })

  it('reconciler failover - a graceful stop releases the lease at once and SIGTERM ends the process cleanly', async () => {
    const leader = await startReconciler({
      repo: repo.dir,
      nats: server.url,
      cacheDir: dir.path,
      id: 'in-process',
      leaseTtlMs: TTL_MS,
    })
    try {
      await waitUntil(() => leader.isLeader() || undefined, TTL_MS + 3000, 'in-process leader')
      childOut = ''
      child2 = spawnChild('child2')
      await waitUntil(
        () => childOut.includes('standby: another reconciler holds the lease') || undefined,
        10_000,
        'child2 up as standby',
      )
    } finally {
      await leader.stop() // releases the lease (KV delete): the standby child takes over without waiting for the TTL
    }
    const p = await probe(server.url)
    try {
      const leases = await new Kvm(jetstream(p.nc)).open('zonegate-leases')
      const t0 = Date.now()
      await waitUntil(
        async () => (await leases.get('reconciler'))?.string() === 'child2' || undefined,
        TTL_MS,
        'child2 leads',
      ).catch(async (err) => {
        throw new Error(
          `${err.message}; lease=${(await leases.get('reconciler'))?.string()}; child2: ${childOut.slice(-3000)}`,
        )
      })
      expect(Date.now() - t0).toBeLessThan(TTL_MS)
      const c = child2 as ChildProcess
      const exited = new Promise<number | null>((res) => c.once('exit', (code) => res(code)))
      c.kill('SIGTERM')
      expect(await exited).toBe(0)
      const entry = await leases.get('reconciler')
      expect(entry === null || entry.operation !== 'PUT').toBe(true)
    } finally {
      await p.close()
    }
  })
})
