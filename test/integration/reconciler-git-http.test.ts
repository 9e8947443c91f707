import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type GitHttpServer, startGitHttpServer } from '../helpers/git-http-server.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { baseFiles, externalYaml, probe, startReconciler, tableHistory, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

describe('reconciler git over smart HTTP', () => {
  let server: NatsServer
  let git: GitHttpServer
  let repo: GitRepo
  let dir: Awaited<ReturnType<typeof tempDir>>

  beforeAll(async () => {
    server = await startNatsServer()
    dir = await tempDir('zonegate-rec-http-')
    repo = await createGitRepo({ dir: join(dir.path, 'served', 'gitops'), files: baseFiles() })
    git = await startGitHttpServer({
      projectRoot: join(dir.path, 'served'),
      auth: { username: 'bot', password: 'pa55-word' },
    })
  })
  afterAll(async () => {
    await git?.close()
    await server?.stop()
    await dir?.remove()
  })

  it('reconciler git over smart HTTP - clones, fetches a new commit, and never logs the credentials', async () => {
    const url = `http://bot:pa55-word@127.0.0.1:${git.port}/gitops?token=also-secret`
    const r = await startReconciler({ repo: url, nats: server.url, cacheDir: join(dir.path, 'cache') })
    const p = await probe(server.url)
    try {
      const sha1 = await repo.head()
      await waitUntil(() => r.status().lastAppliedRevision === `main@sha1:${sha1}`, 10_000, 'first pass over HTTP')
      expect((await tableHistory(p.tables, 'zone-a')).length).toBe(1)

      const sha2 = await repo.commit({ 'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18201', 'zone-a') })
      const report = await r.trigger()
      expect(report).toMatchObject({ result: 'applied', sha: sha2 })
      const h = await tableHistory(p.tables, 'zone-a')
      expect(h.map((e) => e.table?.revision)).toEqual([`main@sha1:${sha1}`, `main@sha1:${sha2}`])
      expect((await tableHistory(p.tables, 'zone-b')).length).toBe(1)
      expect(git.requests).toBeGreaterThan(2)
    } finally {
      await r.stop()
      await p.close()
    }
    const logs = JSON.stringify(r.lines)
    expect(logs).toContain(`http://127.0.0.1:${git.port}/gitops`)
    expect(logs).not.toContain('pa55-word')
    expect(logs).not.toContain('also-secret')
    expect(JSON.stringify(r.status())).not.toContain('pa55-word')
  })

  it('reconciler git over smart HTTP - wrong credentials are a transient FetchFailed with a clean message', async () => {
    const url = `http://bot:nope@127.0.0.1:${git.port}/gitops`
    const r = await startReconciler({ repo: url, nats: server.url, cacheDir: join(dir.path, 'cache2') })
    try {
      const fetchFailed = await waitUntil(
        () => r.status().conditions.find((c) => c.type === 'FetchFailed' && c.status === 'True'),
        5000,
        'FetchFailed condition',
      )
      expect(fetchFailed.message).not.toContain('nope')
      expect(r.status().conditions.find((c) => c.type === 'Stalled')).toBeUndefined()
    } finally {
      await r.stop()
    }
  })
})
