import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { baseFiles, externalYaml, probe, startReconciler, tableHistory, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

describe('reconciler NATS outage', () => {
  let server: NatsServer
  let repo: GitRepo
  let dir: Awaited<ReturnType<typeof tempDir>>

  beforeAll(async () => {
    server = await startNatsServer()
    dir = await tempDir('zonegate-rec-outage-')
    repo = await createGitRepo({ dir: join(dir.path, 'repo'), files: baseFiles() })
  })
  afterAll(async () => {
    await server?.stop()
    await dir?.remove()
  })

  it('reconciler NATS outage - a pass during the outage fails with PublishFailed, is retried, and publishes once NATS is back', async () => {
    const r = await startReconciler({ repo: repo.dir, nats: server.url, cacheDir: dir.path, natsTimeoutMs: 500 })
    try {
      const sha1 = await repo.head()
      await waitUntil(() => r.status().lastAppliedRevision === `main@sha1:${sha1}`, 5000, 'first pass')

      await server.kill()
      const sha2 = await repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18301', 'zone-a') })
      const failed = await r.trigger()
      expect(failed?.result).toBe('failed')
      expect(failed && 'error' in failed ? failed.error.code : '').toBe('PublishFailed')
      expect(r.status().conditions.find((c) => c.type === 'PublishFailed')?.status).toBe('True')
      expect(r.status().lastAppliedRevision).toBe(`main@sha1:${sha1}`)

      await new Promise((res) => setTimeout(res, 300))
      await server.restart()
      // Retries with backoff (100 ms .. 1 s in tests) until the write lands.
      await waitUntil(() => r.status().lastAppliedRevision === `main@sha1:${sha2}`, 10_000, 'publish after restart')
      expect(r.status().conditions.find((c) => c.type === 'PublishFailed')).toBeUndefined()
    } finally {
      await r.stop()
    }
    const p = await probe(server.url)
    try {
      const a = await tableHistory(p.tables, 'zone-a')
      expect(a.map((e) => e.table?.generation)).toEqual([1, 2])
      expect(a[1]?.table?.revision).toBe(`main@sha1:${await repo.head()}`)
      expect((await tableHistory(p.tables, 'zone-b')).length).toBe(1)
    } finally {
      await p.close()
    }
  })
})
