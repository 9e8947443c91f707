import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CommitInvalidEvent } from '../../schemas/events.js'
import type { ReconcilerStatus } from '../../schemas/status.js'
import { tableKey } from '../../schemas/subjects.js'
import { isTableHead } from '../../schemas/table-transport.js'
import {
  baseFiles,
  externalYaml,
  probe,
  type ReconcilerWorld,
  startReconciler,
  startReconcilerWorld,
} from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

/** `count` ExternalServices pinned to `zone`, in one multi-document file. */
const manyServices = (zone: string, count: number) =>
  Array.from({ length: count }, (_, i) => externalYaml(`${zone}-svc-${i}`, `127.0.0.1:${20000 + i}`, zone)).join(
    '---\n',
  )

const condition = (s: ReconcilerStatus, type: string) => s.conditions.find((c) => c.type === type)

describe('reconciler refusals', () => {
  let w: ReconcilerWorld

  beforeAll(async () => {
    // A small max_payload, so a few hundred routes make a table too large for one message.
    w = await startReconcilerWorld({ prefix: 'zonegate-refuse-', natsConfig: 'max_payload: 65536\n' })
  })
  afterAll(async () => {
    await w?.stop()
  })

  const invalidEventOf = (sha: string) =>
    waitUntil(
      () => w.events.find((e): e is CommitInvalidEvent => e.type === 'commit.invalid' && e.revision.endsWith(sha)),
      5000,
      `commit.${sha.slice(0, 7)}.invalid`,
    )

  it('refusals - an emptied zone and too-large tables are commit.invalid events naming every zone; /status stays Stalled', async () => {
    // The largest table published is lowered from 256 MiB to 200 kB, so that a real pass can exceed it.
    const r = await startReconciler({
      repo: w.repo.dir,
      nats: w.nats.url,
      cacheDir: w.dir.path,
      maxTableBytes: 200_000,
    })
    try {
      const sha1 = await w.repo.head()
      await waitUntil(() => r.status().lastAppliedRevision === `main@sha1:${sha1}`, 10_000, 'first pass')

      // Every route of every zone gone: EmptyZoneRefused, announced as an event with the reason and the zones.
      const emptied = await w.repo.commit({
        'external/shared.yaml': null,
        'external/a-only.yaml': null,
        'external/b-only.yaml': null,
      })
      expect((await r.trigger())?.result).toBe('invalid')
      const e1 = await invalidEventOf(emptied)
      expect(e1.reason).toBe('EmptyZoneRefused')
      expect(e1.zones).toEqual(['zone-a', 'zone-b', 'zone-c'])
      expect(e1.violations.map((v) => [v.kind, v.name, v.rule])).toEqual([
        ['Zone', 'zone-a', 'zone.empty-refused'],
        ['Zone', 'zone-b', 'zone.empty-refused'],
        ['Zone', 'zone-c', 'zone.empty-refused'],
      ])

      // The next polls see the stalled sha again: Stalled stays, on /status and in KV, with its transition time.
      const stalledAt = condition(r.status(), 'Stalled')?.lastTransitionTime
      expect(stalledAt).toBeDefined()
      expect((await r.trigger())?.result).toBe('skipped')
      expect((await r.trigger())?.result).toBe('skipped')
      const http = (await (await fetch(`${r.httpUrl}/status`)).json()) as ReconcilerStatus
      expect(condition(http, 'Stalled')).toMatchObject({ status: 'True', reason: 'EmptyZoneRefused' })
      expect(condition(http, 'Stalled')?.lastTransitionTime).toBe(stalledAt)
      expect(condition(http, 'Reconciling')).toBeUndefined()
      expect(http.violations.map((v) => v.name)).toEqual(['zone-a', 'zone-b', 'zone-c'])

      // Tables over max_payload (64 KiB here) are not refused: the pass publishes them through the object
      // store, with a head in KV (decision 008).
      const over = await w.repo.commit({
        'external/shared.yaml': baseFiles()['external/shared.yaml'] as string,
        'external/a-many.yaml': manyServices('zone-a', 400),
        'external/b-many.yaml': manyServices('zone-b', 400),
      })
      expect((await r.trigger())?.result).toBe('applied')
      expect(r.status().lastAppliedRevision).toBe(`main@sha1:${over}`)
      const p = await probe(w.nats.url)
      try {
        for (const zone of ['zone-a', 'zone-b']) {
          const entry = await p.tables.get(tableKey(zone))
          expect(entry!.length).toBeLessThan(65536)
          expect(isTableHead(entry!.json())).toBe(true)
        }
      } finally {
        await p.close()
      }

      // Two zones over the largest table published: TableTooLarge names both, not only the first.
      const big = await w.repo.commit({
        'external/a-many.yaml': manyServices('zone-a', 1200),
        'external/b-many.yaml': manyServices('zone-b', 1200),
      })
      const refused = await r.trigger()
      expect(refused?.result).toBe('invalid')
      expect(refused && 'error' in refused ? refused.error.message : '').toMatch(
        /zone-a .*zone-b .*largest table zonegate publishes \(200000 bytes\)/,
      )
      const e2 = await invalidEventOf(big)
      expect(e2.reason).toBe('TableTooLarge')
      expect(e2.zones).toEqual(['zone-a', 'zone-b'])
      expect(e2.violations.map((v) => v.rule)).toEqual(['zone.table-too-large', 'zone.table-too-large'])
      expect(condition(r.status(), 'Stalled')).toMatchObject({ status: 'True', reason: 'TableTooLarge' })
      // nothing of the refused commit was written: the tables are still those of `over`
      expect(r.status().lastAppliedRevision).toBe(`main@sha1:${over}`)
    } finally {
      await r.stop()
    }
  })
})
