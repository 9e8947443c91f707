import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { requestReconcile } from '../../reconciler/transport/reconcile-requests.js'
import { hubSignature } from '../../reconciler/triggers.js'
import type { ZonegateEvent } from '../../schemas/events.js'
import type { ReconcilerStatus } from '../../schemas/status.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { baseFiles, externalYaml, probe, startReconciler, tableHistory, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

describe('reconciler pass', () => {
  let server: NatsServer
  let repo: GitRepo
  let dir: Awaited<ReturnType<typeof tempDir>>
  let p: Awaited<ReturnType<typeof probe>>
  const events: ZonegateEvent[] = []
  const subjects: string[] = []

  beforeAll(async () => {
    server = await startNatsServer()
    dir = await tempDir('zonegate-rec-')
    // A bare repository: read from the object store, no working tree.
    repo = await createGitRepo({ dir: join(dir.path, 'repo.git'), bare: true, files: baseFiles() })
    await writeFile(join(dir.path, 'secret'), 'webhook-s3cret\n')
    p = await probe(server.url)
    const sub = p.nc.subscribe('zonegate.events.>')
    void (async () => {
      for await (const m of sub) {
        subjects.push(m.subject)
        events.push(m.json<ZonegateEvent>())
      }
    })()
  })
  afterAll(async () => {
    await p?.close()
    await server?.stop()
    await dir?.remove()
  })

  it('reconciler pass - publishes each zone once, then only the changed zone; a restart republishes nothing', async () => {
    const r1 = await startReconciler({ repo: repo.dir, nats: server.url, cacheDir: dir.path })
    try {
      // The lease holder runs a first pass on its own.
      const sha1 = await repo.head()
      await waitUntil(() => r1.status().lastAppliedRevision === `main@sha1:${sha1}`, 5000, 'first pass')
      for (const zone of ['zone-a', 'zone-b', 'zone-c']) {
        const h = await tableHistory(p.tables, zone)
        expect(h.map((e) => e.op)).toEqual(['PUT'])
        expect(h[0]?.table).toMatchObject({ zone, generation: 1, revision: `main@sha1:${sha1}` })
      }

      // Change only zone-a's pinned service: zone-a gets generation 2, the others are untouched.
      const sha2 = await repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18091', 'zone-a') })
      const second = await r1.trigger()
      expect(second).toMatchObject({ result: 'applied', sha: sha2 })
      const a = await tableHistory(p.tables, 'zone-a')
      expect(a.map((e) => e.table?.generation)).toEqual([1, 2])
      expect(a[1]?.table?.revision).toBe(`main@sha1:${sha2}`)
      expect((await tableHistory(p.tables, 'zone-b')).length).toBe(1)
      expect((await tableHistory(p.tables, 'zone-c')).length).toBe(1)
      expect(subjects).toContain(`zonegate.events.commit.${sha2}.published`)
      expect(subjects).toContain('zonegate.events.rollout.zone-a.published')

      const res = await fetch(`${r1.httpUrl}/status`)
      const status = (await res.json()) as ReconcilerStatus
      expect(status.lastAppliedRevision).toBe(`main@sha1:${sha2}`)
      expect(status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True')
      expect(status.zones.map((z) => [z.zone, z.generation])).toEqual([
        ['zone-a', 2],
        ['zone-b', 1],
        ['zone-c', 1],
      ])
      expect(await (await fetch(`${r1.httpUrl}/readyz`)).text()).toBe('ready\n')
      const metrics = await (await fetch(`${r1.httpUrl}/metrics`)).text()
      expect(metrics).toMatch(/zonegate_reconciler_passes_total\{result="applied"\} 2/)
    } finally {
      await r1.stop()
    }

    // A second start reads the inventory back from KV and republishes nothing.
    const r2 = await startReconciler({ repo: repo.dir, nats: server.url, cacheDir: dir.path })
    try {
      expect((await r2.trigger())?.result).toBe('unchanged')
      for (const zone of ['zone-a', 'zone-b', 'zone-c'])
        expect((await tableHistory(p.tables, zone)).length).toBe(zone === 'zone-a' ? 2 : 1)
    } finally {
      await r2.stop()
    }
  })

  it('reconciler pass - an invalid commit publishes nothing and reports every violation with its position', async () => {
    const r = await startReconciler({ repo: repo.dir, nats: server.url, cacheDir: dir.path })
    try {
      await r.trigger()
      const before = (await tableHistory(p.tables, 'zone-a')).length
      const bad = await repo.commit({
        'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18099', 'zone-a'),
        'zones/zone-b.yaml': 'type: ZoneEgress\nname: ze-zone-b\nzone: zone-b\nnetworking:\n  port: 99999\n',
      })
      const report = await r.trigger()
      expect(report?.result).toBe('invalid')
      const invalid = await waitUntil(
        () => events.find((e) => e.type === 'commit.invalid' && e.revision.endsWith(bad)),
        2000,
        'invalid event',
      )
      if (invalid.type !== 'commit.invalid') throw new Error('unreachable')
      const v = invalid.violations.find((x) => x.file === 'zones/zone-b.yaml')
      expect(v).toMatchObject({ file: 'zones/zone-b.yaml', line: 5, kind: 'ZoneEgress', path: 'networking.port' })
      expect(v?.column).toBeGreaterThan(0)
      // All or nothing: zone-a's valid change was not published either.
      expect((await tableHistory(p.tables, 'zone-a')).length).toBe(before)
      const status = r.status()
      expect(status.conditions.find((c) => c.type === 'Stalled')?.status).toBe('True')
      expect(status.violationsRevision).toBe(`main@sha1:${bad}`)
      // The same sha is not retried.
      expect((await r.trigger())?.result).toBe('skipped')
      // A zone losing every route is refused (a new commit leaves the stall).
      await repo.commit({
        'zones/zone-b.yaml': baseFiles()['zones/zone-b.yaml'] as string,
        'external/b-only.yaml': null,
      })
      const emptied = await r.trigger()
      expect(emptied?.result).toBe('applied') // zone-b still has the shared route
      await repo.commit({ 'external/shared.yaml': null, 'external/a-only.yaml': null })
      const refused = await r.trigger()
      expect(refused?.result).toBe('invalid')
      expect(refused && 'error' in refused ? refused.error.message : '').toMatch(
        /zone-a .*zone-b .*zone-c .*--allow-empty/,
      )
      // Restore: a valid commit goes through again.
      await repo.commitAll(baseFiles())
      expect((await r.trigger())?.result).toBe('applied')
    } finally {
      await r.stop()
    }
  })

  it('reconciler pass - webhook with good and bad signatures, and the NATS request trigger replies with the sha', async () => {
    const r = await startReconciler({
      repo: repo.dir,
      nats: server.url,
      cacheDir: dir.path,
      webhookSecretFile: join(dir.path, 'secret'),
    })
    try {
      await r.trigger()
      const body = JSON.stringify({ ref: 'refs/heads/main' })
      const hook = (sig?: string) =>
        fetch(`${r.httpUrl}/hooks/git`, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json', ...(sig ? { 'x-hub-signature-256': sig } : {}) },
        })
      const sha = await repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18111', 'zone-a') })
      expect((await hook()).status).toBe(401)
      expect((await hook(hubSignature('wrong', body))).status).toBe(401)
      await new Promise((res) => setTimeout(res, 200))
      expect(r.status().lastAppliedRevision).not.toBe(`main@sha1:${sha}`)
      expect((await hook(hubSignature('webhook-s3cret', body))).status).toBe(202)
      await waitUntil(() => r.status().lastAppliedRevision === `main@sha1:${sha}`, 3000, 'webhook pass')

      const sha2 = await repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18112', 'zone-a') })
      const reply = await requestReconcile([server.url], 5000)
      expect(reply).toEqual({ ok: true, revision: `main@sha1:${sha2}` })
    } finally {
      await r.stop()
    }
  })
})
