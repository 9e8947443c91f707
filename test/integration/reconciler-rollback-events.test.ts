import fs from 'node:fs'
import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import git from 'isomorphic-git'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runRolloutWatch } from '../../reconciler/cli/rollout.js'
import type { ZonegateEvent } from '../../schemas/events.js'
import { Bucket, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { waitUntil } from '../helpers/wait.js'
import { baseFiles, externalYaml, probe, startReconciler, tempDir } from './reconciler-helpers.js'

describe('reconciler rollback events', () => {
  let server: NatsServer
  let repo: GitRepo
  let dir: Awaited<ReturnType<typeof tempDir>>
  let p: Awaited<ReturnType<typeof probe>>
  const events: ZonegateEvent[] = []

  beforeAll(async () => {
    server = await startNatsServer()
    dir = await tempDir('zonegate-rollback-')
    repo = await createGitRepo({ files: baseFiles() })
    p = await probe(server.url)
    const sub = p.nc.subscribe('zonegate.events.>')
    void (async () => {
      for await (const m of sub) events.push(m.json<ZonegateEvent>())
    })()
  })
  afterAll(async () => {
    await p?.close()
    await server?.stop()
    await repo?.remove()
    await dir?.remove()
  })

  it('rollback - a commit published again within the duplicate window gets its events, and rollout watch follows the newest publication', async () => {
    const r = await startReconciler({ repo: repo.dir, nats: server.url, cacheDir: dir.path, rolloutTimeoutMs: 1500 })
    const instances = await new Kvm(jetstream(p.nc)).open(Bucket.Instances)
    // One egress instance of zone-a, seen through its heartbeat (what the rollout tracker follows).
    const beat = (digest: string) =>
      instances.put('zone-a.ze-zone-a.i1', JSON.stringify({ state: 'serving', digest, time: new Date().toISOString() }))
    const digestOfZoneA = async () => (await p.tables.get(tableKey('zone-a')))?.json<PublishedZoneTable>()
    try {
      await waitUntil(async () => r.status().lastAppliedRevision?.endsWith(await repo.head()), 10_000, 'first pass')
      await beat('sha256:none')

      // X: the instance never reports it, so its first publication times out.
      const x = await repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18091', 'zone-a') })
      expect((await r.trigger())?.result).toBe('applied')
      const xTable = await digestOfZoneA()
      await waitUntil(
        () => events.find((e) => e.type === 'commit.stalled' && e.revision.endsWith(x)),
        10_000,
        'X stalled',
      )
      // Y, then a force-push back to X (well within the 2-minute duplicate window).
      await repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18092', 'zone-a') })
      expect((await r.trigger())?.result).toBe('applied')
      await git.writeRef({ fs, gitdir: repo.gitdir, ref: 'refs/heads/main', value: x, force: true })
      expect((await r.trigger())?.result).toBe('applied')
      const again = await digestOfZoneA()
      expect(again?.digest).toBe(xTable?.digest)
      expect(again?.generation).toBe((xTable?.generation ?? 0) + 2)
      // This time the instance serves X's table: the new publication converges.
      await beat(again?.digest as string)

      const lines: string[] = []
      const code = await runRolloutWatch({ commit: x, output: 'json', nats: [server.url], timeout: '15s' }, (l) =>
        lines.push(l),
      )
      const printed = lines.map((l) => JSON.parse(l) as { type: string; generation?: number; outcome?: string })
      expect(printed.at(-1)).toMatchObject({ type: 'watch.result', outcome: 'converged' })
      expect(code).toBe(0)
      // The second publication's events are in the stream (not dropped as duplicates of the first one's).
      expect(printed.filter((e) => e.type === 'rollout.published').map((e) => e.generation)).toEqual([
        again?.generation,
      ])
      expect(printed.some((e) => e.type === 'commit.published')).toBe(true)
    } finally {
      await r.stop()
    }
  })
})
