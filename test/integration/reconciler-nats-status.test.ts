import { existsSync } from 'node:fs'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusView } from '../../reconciler/cli/status-view.js'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import { publishZoneTable } from '../../reconciler/transport/nats-publisher.js'
import {
  NoReconciler,
  requestReconcile,
  serveReconcileRequests,
} from '../../reconciler/transport/reconcile-requests.js'
import { readStatus, writeStatus } from '../../reconciler/transport/status-store.js'
import type { InstanceHeartbeat } from '../../schemas/events.js'
import type { ReconcilerStatus } from '../../schemas/status.js'
import { instanceKey } from '../../schemas/subjects.js'
import { CLI_PATH, runCli as runBuiltCli } from '../helpers/cli.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'

const log = pino({ level: 'silent' })
const cliPath = CLI_PATH
const SHA = '0123456789abcdef0123456789abcdef01234567'
const REV = `main@sha1:${SHA}`

/** Runs the built CLI with no NATS_URL from the environment. */
const runCli = (args: string[]) => runBuiltCli(args, { env: { NATS_URL: '' }, timeoutMs: 15_000 })

const status: ReconcilerStatus = {
  reconciler: 'rec-1',
  time: '2026-01-01T00:00:00.000Z',
  conditions: [
    {
      type: 'Ready',
      status: 'False',
      reason: 'ValidationFailed',
      message: '1 violation in main@sha1:…',
      lastTransitionTime: '2026-01-01T00:00:00.000Z',
    },
    {
      type: 'Stalled',
      status: 'True',
      reason: 'ValidationFailed',
      message: '1 violation',
      lastTransitionTime: '2026-01-01T00:00:00.000Z',
    },
  ],
  lastAttemptedRevision: REV,
  lastAppliedRevision: 'main@sha1:ffffffffffffffffffffffffffffffffffffffff',
  zones: [{ zone: 'zone-a', generation: 3, digest: 'sha256:aaa', revision: REV }],
  violations: [
    {
      file: 'meshes/default.yaml',
      line: 12,
      column: 7,
      kind: 'Mesh',
      name: 'default',
      path: 'mtls',
      rule: 'mesh.zone-egress-requires-mtls',
      message: 'has to be set when zoneEgress enabled',
    },
  ],
  violationsRevision: REV,
}

describe('reconciler status and reconcile requests', () => {
  let server: NatsServer
  let bus: Bus
  beforeAll(async () => {
    server = await startNatsServer()
    bus = await connectBus({ servers: [server.url], name: 'test', log })
    await ensureNatsLayout(bus)
    // The CLI under test is the built one: dist/ is built by vitest's global setup (test/helpers/global-build.ts)
    if (!existsSync(cliPath)) throw new Error(`build did not produce ${cliPath}`)
  })
  afterAll(async () => {
    await bus?.close()
    await server?.stop()
  })

  it('status store - write then read returns the same status with its KV revision', async () => {
    expect(await readStatus(bus)).toBeNull()
    const rev = await writeStatus(bus, status)
    expect(await readStatus(bus)).toEqual({ status, kvRevision: rev })
  })

  it('reconcile request - served by one member of the queue group; the client gets the revision', async () => {
    let calls = 0
    const handler = async () => {
      calls++
      return { ok: true as const, revision: REV }
    }
    const s1 = serveReconcileRequests(bus, handler)
    const s2 = serveReconcileRequests(bus, handler)
    try {
      await bus.nc.flush()
      expect(await requestReconcile([server.url], 2000)).toEqual({ ok: true, revision: REV })
      await new Promise((r) => setTimeout(r, 100))
      expect(calls).toBe(1)
      const cli = await runCli(['reconcile', '--nats', server.url, '--timeout', '5s'])
      expect(cli.code).toBe(0)
      expect(cli.stdout).toContain(REV)
      expect(calls).toBe(2)
    } finally {
      await s1.stop()
      await s2.stop()
    }
  })

  it('reconcile request - a handler error is replied as ok:false', async () => {
    const s = serveReconcileRequests(bus, async () => {
      throw new Error('git fetch failed: connection refused')
    })
    try {
      await bus.nc.flush()
      expect(await requestReconcile([server.url], 2000)).toEqual({
        ok: false,
        error: 'git fetch failed: connection refused',
      })
    } finally {
      await s.stop()
    }
  })

  it('reconcile request - no responder exits 1, no NATS exits 2, each with a clear message', async () => {
    await expect(requestReconcile([server.url], 2000)).rejects.toBeInstanceOf(NoReconciler)
    const [cli, unreachable] = await Promise.all([
      runCli(['reconcile', '--nats', server.url]),
      runCli(['status', '--nats', 'nats://127.0.0.1:1']),
    ])
    expect(cli.code).toBe(1)
    expect(cli.stderr).toMatch(/no reconciler is answering/)
    expect(cli.stdout).toBe('')
    expect(unreachable.code).toBe(2)
    expect(unreachable.stderr).toMatch(/cannot connect to NATS at nats:\/\/127.0.0.1:1\b.*nats-server -js/)
  })

  it('status CLI - JSON and text show conditions, zones, instances with digest match, and violations', async () => {
    await writeStatus(bus, status)
    await publishZoneTable(
      bus,
      {
        apiVersion: 'zonegate.io/v1',
        kind: 'ZoneEgressTable',
        zone: 'zone-a',
        generation: 3,
        revision: REV,
        digest: 'sha256:aaa',
        egresses: [],
        routes: [],
      },
      0,
    )
    const hb = (generation: number, digest: string): InstanceHeartbeat => ({
      state: 'serving',
      generation,
      digest,
      listen: '127.0.0.1:10002',
      time: '2026-01-01T00:00:01.000Z',
    })
    await bus.kv.instances.put(instanceKey('zone-a', 'ze.a', 'i-1'), JSON.stringify(hb(3, 'sha256:aaa')))
    await bus.kv.instances.put(instanceKey('zone-a', 'ze.a', 'i-2'), JSON.stringify(hb(2, 'sha256:old')))

    const [json, text] = await Promise.all([
      runCli(['status', '--output', 'json', '--nats', server.url]),
      runCli(['status', '--nats', server.url]),
    ])
    // a stalled reconciler (Ready False) is not ready: exit 1, the reason on stderr
    expect(json.code).toBe(1)
    expect(json.stderr).toMatch(/not ready: /)
    const view = JSON.parse(json.stdout) as StatusView
    expect(view.reconciler).toMatchObject({ id: 'rec-1', stalled: true, lastAttemptedRevision: REV })
    expect(view.reconciler?.violations).toHaveLength(1)
    expect(view.zones).toHaveLength(1)
    expect(view.zones[0]).toMatchObject({ zone: 'zone-a', generation: 3, digest: 'sha256:aaa', revision: REV })
    expect(view.zones[0]?.instances.map((i) => [i.egress, i.instance, i.serving])).toEqual([
      ['ze.a', 'i-1', 'current'],
      ['ze.a', 'i-2', 'stale'],
    ])

    expect(text.code).toBe(1)
    expect(text.stdout).toContain('zone-a')
    expect(text.stdout).toMatch(/1\/2 current/)
    expect(text.stdout).toContain('stale (digest mismatch)')
    expect(text.stdout).toContain('meshes/default.yaml:12:7 Mesh/default mtls: has to be set when zoneEgress enabled')
  })
})
