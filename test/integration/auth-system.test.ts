import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import { type Bus, connectBus } from '../../reconciler/transport/nats-bus.js'
import { publishZoneTable, readPublishedTables } from '../../reconciler/transport/nats-publisher.js'
import { readStatus } from '../../reconciler/transport/status-store.js'
import { tableKey } from '../../schemas/subjects.js'
import { startUpstream, tlsConnect, type Upstream } from '../helpers/egress-fixtures.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { largeTable } from '../helpers/large-table.js'
import { type AuthNats, startAuthNats } from '../helpers/nats-auth.js'
import { baseFiles, startReconciler, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * The whole NATS path with auth on (nats-server running `zonegate auth init`'s configuration): the reconciler
 * with its token publishes, an egress with zone-a's token reads its table (inline and, for a large table, from
 * the object store), heartbeats and reports `applied`, the rollout converges, a viewer reads the status.
 */
let nats: AuthNats
let repo: GitRepo
let up: Upstream
let stateDir: string
const egresses: EgressHandle[] = []
const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })

beforeAll(async () => {
  ;[nats, up] = await Promise.all([startAuthNats(), startUpstream('U')])
  repo = await createGitRepo({ files: baseFiles() })
  stateDir = await mkdtemp(join(tmpdir(), 'auth-system-'))
}, 30_000)

afterAll(async () => {
  for (const e of egresses) await e.shutdown().catch(() => {})
  await nats?.stop()
  await up?.close()
  await repo?.remove()
  if (stateDir !== undefined) await rm(stateDir, { recursive: true, force: true })
})

const dump = async (url: string) =>
  (await (await fetch(`${url}/config_dump`)).json()) as { state: string; generation: number | null }

describe('auth - the system with tokens', () => {
  it('auth system - the reconciler token publishes, a zone token serves and converges, a viewer reads status', async () => {
    const cache = await tempDir('auth-system-cache-')
    const rec = await nats.token('reconciler')
    const r = await startReconciler({ repo: repo.dir, nats: nats.url, cacheDir: cache.path, natsAuth: rec.auth })
    try {
      const zoneA = await nats.token('egress', { zone: 'zone-a' })
      const e = runEgress({
        nats: { servers: [nats.url], auth: zoneA.auth, stateDir, heartbeatMs: 300 },
        zone: 'zone-a',
        name: 'ze-zone-a',
        instance: 'e1',
        listen: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        logger: silent,
        graceMs: 300,
      })
      egresses.push(e)
      const { admin } = await e.ready
      await r.trigger()
      await waitUntil(
        () => r.status().zones.find((z) => z.zone === 'zone-a' && z.rollout?.state === 'converged'),
        20_000,
        'zone-a converged with a zone token',
      )
      expect(await dump(`http://127.0.0.1:${admin!.port}`)).toMatchObject({ state: 'serving', generation: 1 })

      const viewer = await nats.token('viewer')
      const bus = await connectBus({ servers: [nats.url], name: 'viewer', log: silent, auth: viewer.auth })
      try {
        const status = await readStatus(bus)
        expect(status?.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True')
        await expect(bus.kv.status.put('reconciler', '{}')).rejects.toThrow()
      } finally {
        await bus.close()
      }
    } finally {
      await r.stop()
      await cache.remove()
    }
  })

  it('auth system - a large table (object store body) reaches an egress that has only its zone token', async () => {
    const rec = await nats.token('reconciler')
    const bus: Bus = await connectBus({ servers: [nats.url], name: 'writer', log: silent, auth: rec.auth })
    try {
      const current = (await readPublishedTables(bus)).get('zone-a')
      const generation = (current?.table.generation ?? 0) + 10
      const t = largeTable(12_000, {
        generation,
        extra: [
          {
            sni: 'svc.test',
            mesh: 'default',
            service: 'svc',
            kind: 'cross-zone',
            mode: 'passthrough',
            upstreams: [{ address: '127.0.0.1', port: up.port, weight: 1 }],
          },
        ],
      })
      expect(JSON.stringify(t).length).toBeGreaterThan(bus.nc.info!.max_payload)
      await publishZoneTable(bus, t, current?.kvRevision ?? 0)
      expect((await bus.kv.tables.get(tableKey('zone-a')))?.json<{ kind: string }>().kind).toBe('ZoneEgressTableRef')

      const zoneA = await nats.token('egress', { zone: 'zone-a' })
      const e = runEgress({
        nats: { servers: [nats.url], auth: zoneA.auth, heartbeatMs: 300 },
        zone: 'zone-a',
        name: 'ze-a',
        instance: 'large',
        listen: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        logger: silent,
        graceMs: 300,
      })
      egresses.push(e)
      const { listen, admin } = await e.ready
      await waitUntil(
        async () => (await dump(`http://127.0.0.1:${admin!.port}`)).generation === generation,
        20_000,
        'large table served',
      )
      expect((await tlsConnect(listen.port, 'svc.test')).upstream).toBe('U')
      // the zone token wrote its heartbeat (read back with the reconciler's token)
      const hb = await waitUntil(
        async () => (await bus.kv.instances.get('zone-a.ze-a.large')) ?? undefined,
        5000,
        'heartbeat of the large-table egress',
      )
      expect(hb.json<{ generation: number }>().generation).toBe(generation)
    } finally {
      await bus.close()
    }
  })

  it('auth system - an egress whose token is revoked keeps serving and comes back when its .creds file is renewed', async () => {
    const bad = await nats.token('egress', { zone: 'zone-a' })
    const e = runEgress({
      nats: { servers: [nats.url], auth: bad.auth, heartbeatMs: 300 },
      zone: 'zone-a',
      name: 'ze-a',
      instance: 'revoked',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      logger: silent,
      graceMs: 300,
    })
    egresses.push(e)
    const { listen, admin } = await e.ready
    const url = `http://127.0.0.1:${admin!.port}`
    const natsState = async () =>
      ((await (await fetch(`${url}/config_dump`)).json()) as { nats: { connected: boolean } }).nats.connected
    await waitUntil(async () => (await natsState()) || undefined, 10_000, 'egress connected')
    await nats.revoke(bad.user)
    await waitUntil(async () => !(await natsState()) || undefined, 10_000, 'egress dropped after the revocation')
    // still serving its table while refused
    expect(['serving', 'degraded']).toContain((await dump(url)).state)
    expect((await tlsConnect(listen.port, 'svc.test')).upstream).toBe('U')
    // the operator writes a new token into the same file: the next reconnect uses it
    const renewed = await nats.token('egress', { zone: 'zone-a' })
    await writeFile(bad.file, await readFile(renewed.file))
    await waitUntil(async () => (await natsState()) || undefined, 15_000, 'egress reconnected with the renewed token')
  })
})
