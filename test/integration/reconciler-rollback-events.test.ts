import fs from 'node:fs'
import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import git from 'isomorphic-git'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runRolloutWatch } from '../../reconciler/cli/rollout.js'
import { Bucket, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import {
  externalYaml,
  type ReconcilerWorld,
  startReconciler,
  startReconcilerWorld,
} from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

describe('reconciler rollback events', () => {
  let w: ReconcilerWorld

  beforeAll(async () => {
    w = await startReconcilerWorld({ prefix: 'zonegate-rollback-' })
  })
  afterAll(async () => {
    await w?.stop()
  })

  it('rollback - a commit published again within the duplicate window gets its events, and rollout watch follows the newest publication', async () => {
    const r = await startReconciler({
      repo: w.repo.dir,
      nats: w.nats.url,
      cacheDir: w.dir.path,
      rolloutTimeoutMs: 1500,
    })
    const instances = await new Kvm(jetstream(w.probe.nc)).open(Bucket.Instances)
    // One egress instance of zone-a, seen through its heartbeat (what the rollout tracker follows).
    const beat = (digest: string) =>
      instances.put('zone-a.ze-zone-a.i1', JSON.stringify({ state: 'serving', digest, time: new Date().toISOString() }))
    const digestOfZoneA = async () => (await w.probe.tables.get(tableKey('zone-a')))?.json<PublishedZoneTable>()
    try {
      await waitUntil(async () => r.status().lastAppliedRevision?.endsWith(await w.repo.head()), 10_000, 'first pass')
      await beat('sha256:none')

      // X: the instance never reports it, so its first publication times out.
      const x = await w.repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18091', 'zone-a') })
      expect((await r.trigger())?.result).toBe('applied')
      const xTable = await digestOfZoneA()
      await waitUntil(
        () => w.events.find((e) => e.type === 'commit.stalled' && e.revision.endsWith(x)),
        10_000,
        'X stalled',
      )
      // Y, then a force-push back to X (well within the 2-minute duplicate window).
      await w.repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18092', 'zone-a') })
      expect((await r.trigger())?.result).toBe('applied')
      await git.writeRef({ fs, gitdir: w.repo.gitdir, ref: 'refs/heads/main', value: x, force: true })
      expect((await r.trigger())?.result).toBe('applied')
      const again = await digestOfZoneA()
      expect(again?.digest).toBe(xTable?.digest)
      expect(again?.generation).toBe((xTable?.generation ?? 0) + 2)
      // This time the instance serves X's table: the new publication converges.
      await beat(again?.digest as string)

      const lines: string[] = []
      const code = await runRolloutWatch({ commit: x, output: 'json', nats: [w.nats.url], timeout: '15s' }, (l) =>
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
