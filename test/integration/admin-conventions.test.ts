import { spawnSync } from 'node:child_process'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runEgress } from '../../egress/main.js'
import { closedPort } from '../helpers/egress-fixtures.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { baseFiles, captureLogger, startReconciler, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * The admin HTTP conventions of both processes (Envoy's paths, Prometheus names): the egress answers `/ready`
 * with 503 while it is still connecting (its admin is up from the start with --admin) and has `/server_info`;
 * the reconciler has `/ready` (and `/readyz`), `/server_info`, `/metrics` (and `/stats/prometheus`); both expose
 * prom-client's process metrics, `zonegate_build_info` and their readiness / NATS gauges. Real NATS, real Git.
 */
let server: NatsServer
let repo: GitRepo
let dir: Awaited<ReturnType<typeof tempDir>>

beforeAll(async () => {
  server = await startNatsServer()
  dir = await tempDir('zonegate-admin-')
  repo = await createGitRepo({ dir: join(dir.path, 'repo.git'), bare: true, files: baseFiles() })
})
afterAll(async () => {
  await server?.stop()
  await dir?.remove()
})

describe('admin conventions', () => {
  it('egress admin - /ready is 503 while connecting (admin up at once), /server_info and metrics', async () => {
    const adminPort = await closedPort()
    const deadNats = `nats://127.0.0.1:${await closedPort()}`
    const { log } = captureLogger()
    const egress = runEgress({
      nats: { servers: [deadNats] },
      zone: 'zone-a',
      name: 'ze-a',
      instance: 'i-test',
      admin: { host: '127.0.0.1', port: adminPort },
      logger: log,
    })
    try {
      const url = `http://127.0.0.1:${adminPort}`
      const ready = await waitUntil(async () => fetch(`${url}/ready`).catch(() => undefined), 10_000, 'admin up')
      expect(ready.status).toBe(503)
      expect(await ready.text()).toBe('connecting\n')
      const info = (await (await fetch(`${url}/server_info`)).json()) as Record<string, unknown>
      expect(info).toMatchObject({
        state: 'connecting',
        zone: 'zone-a',
        name: 'ze-a',
        instance: 'i-test',
        mode: 'nats',
      })
      expect(info.version).toMatch(/^\d+\.\d+\.\d+/)
      const prom = await (await fetch(`${url}/stats/prometheus`)).text()
      for (const line of [
        /^zonegate_build_info\{version="\d+\.\d+\.\d+[^"]*",node="v\d+[^"]*"\} 1$/m,
        /^zonegate_egress_ready 0$/m,
        /^zonegate_egress_nats_connected 0$/m,
        /^process_cpu_seconds_total \d/m,
        /^nodejs_eventloop_lag_seconds \d/m,
        /^# TYPE zonegate_egress_received_bytes_total counter$/m,
        /^# TYPE zonegate_egress_client_hello_duration_seconds histogram$/m,
      ])
        expect(prom).toMatch(line)
      // one name per metric: the old names are gone
      expect(prom).not.toMatch(/zonegate_egress_bytes_received_total|zonegate_egress_client_hello_seconds_/)
    } finally {
      await egress.shutdown()
    }
  })

  it('reconciler admin - /ready, /server_info, /metrics and /stats/prometheus with the gauges', async () => {
    const r = await startReconciler({ repo: repo.dir, nats: server.url, cacheDir: dir.path })
    try {
      const sha = await repo.head()
      await waitUntil(() => r.status().lastAppliedRevision === `main@sha1:${sha}`, 10_000, 'first pass')
      await waitUntil(async () => (await fetch(`${r.httpUrl}/ready`)).status === 200, 10_000, '/ready 200')
      expect(await (await fetch(`${r.httpUrl}/readyz`)).text()).toBe('ready\n')
      const info = (await (await fetch(`${r.httpUrl}/server_info`)).json()) as Record<string, unknown>
      expect(info).toMatchObject({ id: r.id, leader: true, ready: true })
      const metrics = await (await fetch(`${r.httpUrl}/metrics`)).text()
      expect(await (await fetch(`${r.httpUrl}/stats/prometheus`)).text()).toMatch(/^zonegate_reconciler_leader 1$/m)
      for (const line of [
        /^zonegate_build_info\{version="[^"]+",node="v[^"]+"\} 1$/m,
        /^zonegate_reconciler_ready 1$/m,
        /^zonegate_reconciler_leader 1$/m,
        /^zonegate_reconciler_nats_connected 1$/m,
        /^zonegate_reconciler_last_success_timestamp_seconds 1\d{9}/m,
        /^# TYPE zonegate_reconciler_commit_to_converged_seconds histogram$/m,
        /^process_resident_memory_bytes \d/m,
      ])
        expect(metrics).toMatch(line)
      // the page's data follows the events stream: the first commit's timeline shows up
      await waitUntil(
        async () => {
          const view = (await (await fetch(`${r.httpUrl}/api/view`)).json()) as { timelines: { sha: string }[] }
          return view.timelines.some((t) => t.sha === sha)
        },
        10_000,
        'timeline of the first commit',
      )
      // `zonegate events` lists the same commit's events from the stream, to the last one stored
      const cli = resolve(import.meta.dirname, '../../dist/cli/main.js')
      const ev = spawnSync(
        process.execPath,
        [cli, 'events', '--commit', sha.slice(0, 8), '-o', 'json', '--nats', server.url],
        {
          encoding: 'utf8',
          timeout: 30_000,
        },
      )
      expect(ev.status).toBe(0)
      const types = ev.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { type: string }).type)
      expect(types).toEqual(expect.arrayContaining(['commit.fetched', 'commit.published', 'rollout.published']))
      const page = await fetch(`${r.httpUrl}/`)
      expect(page.headers.get('content-type')).toMatch(/^text\/html/)
      expect(await page.text()).toContain('<script src="/ui/app.js"></script>')
    } finally {
      await r.stop()
    }
  })

  it('egress - a zone without a table logs which zones have one, and waits', async () => {
    // the reconciler of the previous test published zone-a, zone-b and zone-c
    const { log, lines } = captureLogger()
    const egress = runEgress({
      nats: { servers: [server.url] },
      zone: 'zone-x',
      name: 'ze-x',
      instance: 'i-x',
      admin: false,
      logger: log,
    })
    try {
      const warn = await waitUntil(
        () => lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('no table for zone "zone-x"')),
        10_000,
        'the no-table warning',
      )
      expect(warn.zones).toEqual(['zone-a', 'zone-b', 'zone-c'])
      expect(warn.msg).toContain('zones with a table: zone-a, zone-b, zone-c')
      expect(egress.actor.getSnapshot().value).toBe('awaitingTable')
    } finally {
      await egress.shutdown()
    }
  })
})
