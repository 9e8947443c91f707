import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { Objm } from '@nats-io/obj'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseClientHello } from '../../egress/core/client-hello.js'
import { buildHello, toRecords } from '../../egress/core/hello-builder.js'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import { type AdminServer, createReconcilerMetrics, startAdminServer } from '../../reconciler/admin/http.js'
import type { RunningReconciler } from '../../reconciler/main.js'
import { initialStatus } from '../../reconciler/steps/status.js'
import { type Bus, connectBus } from '../../reconciler/transport/nats-bus.js'
import { hubSignature } from '../../reconciler/triggers.js'
import { certSubject, instanceKey, TABLE_BODIES_BUCKET, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { encodeTableBody, MAX_TABLE_BODY_BYTES, type TableHead } from '../../schemas/table-transport.js'
import { rawExchange, startUpstream, tlsConnect, type Upstream } from '../helpers/egress-fixtures.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { egressYaml, ingressYaml, MESH, startReconciler, tempDir } from '../helpers/reconciler-world.js'
import { buildTable, svcRoute } from '../helpers/table.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * The hostile-input suite: one row per input an attacker (or a broken peer) can send to a running reconciler and
 * egress — the webhook, every NATS subject and KV key they consume, tables in KV and the object store. Each row
 * states the error it must get, and every row asserts "nothing published, nothing crashed": no reconciler event
 * (no pass ran), the zone's table in KV is only what the attacker wrote, the egress still serves the same
 * generation, and both processes still answer. The egress here pins no key, so each malformed table reaches its
 * own check (signatures: auth-signed-tables.test.ts). At the end a genuine signed webhook runs a pass, which
 * repairs the zone's key: the refusals were refusals, not a broken hook.
 */
const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })
const SNI = 'svc{mesh=default}'
const SECRET = 'hostile-webhook-secret'
const BODY_TIMEOUT_MS = 600
const HELLO_TIMEOUT_MS = 1000

let nats: NatsServer
let up: Upstream
let dir: { path: string; remove(): Promise<void> }
let repo: GitRepo
let reconciler: RunningReconciler & { lines: Record<string, unknown>[] }
let egress: EgressHandle
let egressPort: number
let attacker: Bus
let watcher: NatsConnection
let openHook: AdminServer
let insecureHook: AdminServer
const events: { subject: string; type?: string; instance?: string; reason?: string }[] = []
let servedGeneration: number
let webhookPokes = 0

const EGRESS = egressYaml('zone-a', 10002, 'ze-a')

/** A table for zone-a (digest right) that the attacker bends per row. */
function table(generation: number, over: Partial<PublishedZoneTable> = {}): PublishedZoneTable {
  const t = buildTable([svcRoute(9)], {
    egresses: [{ name: 'ze-a', address: '127.0.0.1', port: 10002 }],
    generation,
    revision: `main@sha1:${'e'.repeat(40)}`,
  })
  return { ...t, ...over } as PublishedZoneTable
}

async function writeKey(value: string | Uint8Array): Promise<void> {
  const e = await attacker.kv.tables.get(tableKey('zone-a'))
  await attacker.kv.tables.update(tableKey('zone-a'), value, e?.revision ?? 0)
}

/** A raw HTTP exchange: writes `head` (+ `body` chunks, `pauseMs` apart), resolves with the status and whether the server closed. */
function rawHttp(
  port: number,
  head: string,
  chunks: Buffer[] = [],
  pauseMs = 0,
): Promise<{ status: number; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now()
    const s = net.connect(port, '127.0.0.1')
    let text = ''
    let status = 0
    s.on('data', (d) => {
      text += d.toString('latin1')
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text)
      if (m) status = Number(m[1])
    })
    s.on('error', () => {})
    s.on('close', () => resolve({ status, closed: true, ms: Date.now() - t0 }))
    setTimeout(() => {
      s.destroy()
      resolve({ status, closed: false, ms: Date.now() - t0 })
    }, 8000).unref()
    s.write(head)
    void (async () => {
      for (const c of chunks) {
        if (s.destroyed) return
        s.write(c)
        if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs))
      }
    })()
  })
}

const hookHead = (extra: string) =>
  `POST /hooks/git HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${extra}\r\n`
const hookUrl = () => `${reconciler.httpUrl}/hooks/git`
const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } })

type Observed = string | number
interface Row {
  name: string
  /** Sends the hostile input; resolves with what the sender saw (status, reply) or '' for fire-and-forget. */
  send(): Promise<Observed>
  /** The error it must get: a status, a reply/problem pattern, or an egress `rejected` reason pattern. */
  expect: { status: number } | { reply: RegExp } | { log: RegExp } | { rejected: RegExp }
}

const webhookRows: Row[] = [
  {
    name: 'webhook without a signature',
    send: async () => (await post(hookUrl(), '{}')).status,
    expect: { status: 401 },
  },
  {
    name: 'webhook with a wrong signature (same length, other secret)',
    send: async () => (await post(hookUrl(), '{}', { 'x-hub-signature-256': hubSignature('nope', '{}') })).status,
    expect: { status: 401 },
  },
  {
    name: 'webhook with a signature of another body',
    send: async () =>
      (await post(hookUrl(), '{"ref":"x"}', { 'x-hub-signature-256': hubSignature(SECRET, '{}') })).status,
    expect: { status: 401 },
  },
  {
    name: 'webhook with a malformed signature header',
    send: async () => (await post(hookUrl(), '{}', { 'x-hub-signature-256': 'sha256=zz' })).status,
    expect: { status: 401 },
  },
  {
    name: 'webhook announcing a 50 MB body',
    send: async () => (await rawHttp(Number(new URL(hookUrl()).port), hookHead('content-length: 50000000\r\n'))).status,
    expect: { status: 413 },
  },
  {
    name: 'webhook streaming 3 MB chunked (no length announced)',
    send: async () => {
      const chunk = Buffer.alloc(256 * 1024, 0x61)
      const framed = Array.from({ length: 12 }, () =>
        Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
      )
      const r = await rawHttp(Number(new URL(hookUrl()).port), hookHead('transfer-encoding: chunked\r\n'), framed)
      expect(r.closed).toBe(true)
      return r.status
    },
    expect: { status: 413 },
  },
  {
    name: 'webhook whose body trickles in (slow loris)',
    send: async () => {
      const r = await rawHttp(
        Number(new URL(hookUrl()).port),
        hookHead('content-length: 100\r\n'),
        Array.from({ length: 40 }, () => Buffer.from('a')),
        100,
      )
      expect(r.closed).toBe(true)
      expect(r.ms).toBeLessThan(BODY_TIMEOUT_MS + 2500)
      return r.status
    },
    expect: { status: 408 },
  },
  {
    name: 'webhook on a reconciler without a secret (no --insecure-webhook)',
    send: async () => (await post(`${openHook.url}/hooks/git`, '{}')).status,
    expect: { status: 403 },
  },
]

const natsRows: Row[] = [
  {
    name: 'zonegate.cmd.reconcile with a body that is not JSON',
    send: async () => (await watcher.request('zonegate.cmd.reconcile', 'rm -rf /', { timeout: 3000 })).string(),
    expect: { reply: /"ok":false.*invalid request: payload is not JSON/ },
  },
  {
    name: 'zonegate.cmd.reconcile with unknown members',
    send: async () =>
      (await watcher.request('zonegate.cmd.reconcile', '{"branch":"evil"}', { timeout: 3000 })).string(),
    expect: { reply: /"ok":false.*invalid request/ },
  },
  {
    name: 'zonegate.cmd.cert.zone-a with garbage',
    send: async () => (await watcher.request(certSubject('zone-a'), '\u0000\u0001', { timeout: 3000 })).string(),
    expect: { reply: /"ok":false.*not JSON/ },
  },
  {
    name: 'zonegate.cmd.cert.zone-a for another zone',
    send: async () =>
      (
        await watcher.request(
          certSubject('zone-a'),
          JSON.stringify({ zone: 'zone-b', egress: 'e', instance: 'i', mesh: 'default', csr: '-----BEGIN x' }),
          { timeout: 3000 },
        )
      ).string(),
    expect: { reply: /"ok":false.*(does not match|invalid request)/ },
  },
  {
    name: 'zonegate.cmd.cert.zone-a over the size limit',
    send: async () => (await watcher.request(certSubject('zone-a'), 'x'.repeat(200_000), { timeout: 3000 })).string(),
    expect: { reply: /"ok":false.*larger than/ },
  },
  {
    name: 'a rollout event that is not JSON',
    send: async () => {
      watcher.publish('zonegate.events.rollout.zone-a.applied.ze-a.evil', '{{{')
      return ''
    },
    expect: { log: /invalid rollout event ignored/ },
  },
  {
    name: 'an applied event with a string generation',
    send: async () => {
      watcher.publish(
        'zonegate.events.rollout.zone-a.applied.ze-a.evil',
        JSON.stringify({
          type: 'rollout.applied',
          time: 'now',
          revision: 'r',
          zone: 'zone-a',
          egress: 'ze-a',
          instance: 'evil',
          generation: '999',
          digest: 'x',
          swapMs: 1,
        }),
      )
      return ''
    },
    expect: { log: /invalid rollout event ignored/ },
  },
  {
    name: 'a rejected event with a 100 KB reason',
    send: async () => {
      watcher.publish(
        'zonegate.events.rollout.zone-a.rejected.ze-a.evil',
        JSON.stringify({
          type: 'rollout.rejected',
          time: 'now',
          revision: 'r',
          zone: 'zone-a',
          egress: 'ze-a',
          instance: 'evil',
          reason: 'x'.repeat(100_000),
        }),
      )
      return ''
    },
    expect: { log: /invalid rollout event ignored/ },
  },
  {
    name: 'a heartbeat that is not JSON',
    send: async () => {
      await attacker.kv.instances.put(instanceKey('zone-a', 'ze-a', 'evil-1'), 'not json')
      return ''
    },
    expect: { log: /invalid heartbeat ignored/ },
  },
  {
    name: 'a heartbeat with a negative generation',
    send: async () => {
      await attacker.kv.instances.put(
        instanceKey('zone-a', 'ze-a', 'evil-2'),
        JSON.stringify({ state: 'serving', generation: -5, time: 'now' }),
      )
      return ''
    },
    expect: { log: /invalid heartbeat ignored/ },
  },
]

const tableRows: Row[] = [
  {
    name: 'a table that is not JSON',
    send: () => writeKey('{"apiVersion":').then(() => ''),
    expect: { rejected: /^invalid: / },
  },
  { name: 'a JSON array', send: () => writeKey('[1,2,3]').then(() => ''), expect: { rejected: /^invalid: / } },
  {
    name: 'a table with a port out of range',
    send: () => writeKey(JSON.stringify(table(900, { egresses: [{ name: 'ze-a', port: 70000 }] }))).then(() => ''),
    expect: { rejected: /^invalid: .*port/ },
  },
  {
    name: 'a table with a 100 KB server name',
    send: () =>
      writeKey(JSON.stringify(table(901, { routes: [{ ...table(1).routes[0]!, sni: 'a'.repeat(100_000) }] }))).then(
        () => '',
      ),
    // (the digest is left as is: the shape check comes first and must refuse it)
    expect: { rejected: /^invalid: / },
  },
  {
    name: 'a table for another zone',
    send: () => writeKey(JSON.stringify(table(902, { zone: 'zone-b' }))).then(() => ''),
    expect: { rejected: /^(wrong-zone|invalid): / },
  },
  {
    name: 'a table whose digest does not match',
    send: () => writeKey(JSON.stringify(table(903, { digest: `sha256:${'0'.repeat(64)}` }))).then(() => ''),
    expect: { rejected: /^digest-mismatch: / },
  },
  {
    name: 'a head announcing a body over the 256 MiB cap',
    send: async () => {
      const t = table(904)
      const { head } = encodeTableBody(JSON.stringify(t), t, { bucket: TABLE_BODIES_BUCKET, name: 'zone-a.table.904' })
      await writeKey(JSON.stringify({ ...head, object: { ...head.object, size: MAX_TABLE_BODY_BYTES + 1 } }))
      return ''
    },
    expect: { rejected: /^invalid-head: / },
  },
  {
    name: 'a head naming a body that does not exist',
    send: async () => {
      const t = table(905)
      const { head } = encodeTableBody(JSON.stringify(t), t, { bucket: TABLE_BODIES_BUCKET, name: 'zone-a.table.x' })
      await writeKey(JSON.stringify(head))
      return ''
    },
    expect: { rejected: /^body-missing: / },
  },
  {
    name: 'a gzip bomb: 64 MB of zeros behind a head announcing 2 KB',
    send: async () => {
      const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 })
      const name = 'zone-a.table.bomb'
      await (await new Objm(attacker.js).open(TABLE_BODIES_BUCKET)).putBlob({ name }, bomb)
      const t = table(906)
      const { head } = encodeTableBody(JSON.stringify(t), t, { bucket: TABLE_BODIES_BUCKET, name })
      const h: TableHead = {
        ...head,
        object: {
          ...head.object,
          size: 2048,
          storedSize: bomb.length,
          sha256: `sha256:${createHash('sha256').update(bomb).digest('hex')}`,
        },
      }
      await writeKey(JSON.stringify(h))
      return ''
    },
    expect: { rejected: /^body-mismatch: / },
  },
  {
    name: 'an older generation (replay)',
    send: () => writeKey(JSON.stringify(table(0))).then(() => ''),
    expect: { rejected: /^stale-generation: / },
  },
]

beforeAll(async () => {
  ;[up, nats] = await Promise.all([startUpstream('A'), startNatsServer()])
  watcher = await connect({ servers: nats.url })
  watcher.subscribe('zonegate.events.>', {
    callback: (_e, m) => {
      let v: { type?: string; instance?: string; reason?: string } = {}
      try {
        v = m.json()
      } catch {}
      events.push({ subject: m.subject, type: v.type, instance: v.instance, reason: v.reason })
    },
  })
  dir = await tempDir('hostile-')
  const secretFile = join(dir.path, 'webhook-secret')
  await writeFile(secretFile, `${SECRET}\n`)
  repo = await createGitRepo({
    files: { 'meshes/default.yaml': MESH, 'zones/zone-a.yaml': EGRESS, 'zones/zone-b.yaml': ingressYaml(up.port) },
  })
  reconciler = await startReconciler({
    repo: repo.dir,
    nats: nats.url,
    cacheDir: join(dir.path, 'cache'),
    webhookSecretFile: secretFile,
    webhookBodyTimeoutMs: BODY_TIMEOUT_MS,
  })
  await reconciler.trigger()
  egress = runEgress({
    nats: { servers: [nats.url], heartbeatMs: 300 },
    zone: 'zone-a',
    name: 'ze-a',
    instance: 'e1',
    listen: { host: '127.0.0.1', port: 0 },
    admin: false,
    logger: silent,
    graceMs: 300,
    proxy: { helloTimeoutMs: HELLO_TIMEOUT_MS },
  })
  egressPort = (await egress.ready).listen.port
  servedGeneration = egress.actor.getSnapshot().context.table?.generation ?? -1
  attacker = await connectBus({ servers: [nats.url], name: 'attacker', log: silent })
  // the first rollout ends before the rows start (its converged events are not a row's doing)
  await waitUntil(() => events.some((e) => e.type === 'commit.converged'), 20_000, 'first rollout converged')
  // the same admin server code without a secret, and with --insecure-webhook
  const common = {
    host: '127.0.0.1',
    port: 0,
    log: silent,
    status: () => initialStatus('x', new Date()),
    ready: () => true,
    onWebhook: () => {
      webhookPokes++
    },
  }
  openHook = await startAdminServer({ ...common, metrics: createReconcilerMetrics() })
  insecureHook = await startAdminServer({ ...common, metrics: createReconcilerMetrics(), insecureWebhook: true })
}, 60_000)

afterAll(async () => {
  await egress?.shutdown()
  await openHook?.close()
  await insecureHook?.close()
  await watcher?.close()
  await attacker?.close()
  await reconciler?.stop()
  await nats?.stop()
  await up?.close()
  await repo?.remove()
  await dir?.remove()
})

/** Nothing published and nothing crashed since event index `since` (`egressRejects`: the egress's own rejection is the expected answer). */
async function nothingPublishedNothingCrashed(since: number, egressRejects: boolean): Promise<void> {
  await new Promise((r) => setTimeout(r, 150))
  const fromSystem = events
    .slice(since)
    .filter((e) => !e.subject.endsWith('.evil')) // the attacker's own publishes
    .filter((e) => !(egressRejects && e.type === 'rollout.rejected' && e.instance === 'e1'))
  expect(fromSystem).toEqual([])
  expect(webhookPokes).toBe(0)
  expect(egress.actor.getSnapshot().status).toBe('active')
  expect(egress.actor.getSnapshot().context.table?.generation).toBe(servedGeneration)
  expect((await tlsConnect(egressPort, SNI)).upstream).toBe('A')
  expect((await fetch(`${reconciler.httpUrl}/healthz`)).status).toBe(200)
}

describe('hostile input', () => {
  it.each(webhookRows.map((r) => [r.name, r] as const))('hostile input - %s', async (_n, row) => {
    const since = events.length
    const got = await row.send()
    expect(got).toBe((row.expect as { status: number }).status)
    await nothingPublishedNothingCrashed(since, false)
  })

  it.each(natsRows.map((r) => [r.name, r] as const))('hostile input - %s', async (_n, row) => {
    const since = events.length
    const lines = reconciler.lines.length
    const got = await row.send()
    if ('reply' in row.expect) expect(String(got)).toMatch(row.expect.reply)
    if ('log' in row.expect) {
      const re = row.expect.log
      await waitUntil(() => reconciler.lines.slice(lines).some((l) => re.test(String(l.msg))), 5000, String(re))
    }
    await nothingPublishedNothingCrashed(since, false)
  })

  it.each(tableRows.map((r) => [r.name, r] as const))('hostile input - %s', async (_n, row) => {
    const since = events.length
    await row.send()
    const re = (row.expect as { rejected: RegExp }).rejected
    const got = await waitUntil(
      () => events.slice(since).find((e) => e.type === 'rollout.rejected' && e.instance === 'e1'),
      10_000,
      'the egress rejects',
    )
    expect(got.reason).toMatch(re)
    await nothingPublishedNothingCrashed(since, true)
  })

  it('hostile input - a ClientHello whose record header claims more bytes than arrive is not routed; the hello timeout closes it', async () => {
    const since = events.length
    const hs = buildHello({ sni: [SNI] })
    const claim = hs.length + 64
    const bytes = Buffer.concat([Buffer.from([22, 3, 1, claim >> 8, claim & 0xff]), hs])
    const accepts = up.accepts
    const timeouts = egress.proxy!.stats.rejected.get('hello-timeout') ?? 0
    const t0 = Date.now()
    const r = await rawExchange(egressPort, bytes)
    expect(r.closed).toBe(true)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(HELLO_TIMEOUT_MS - 50)
    expect(up.accepts).toBe(accepts) // never routed
    expect(egress.proxy!.stats.rejected.get('hello-timeout')).toBe(timeouts + 1)
    // the same hello with an honest record header is routed at once
    expect(parseClientHello(toRecords(hs))).toMatchObject({ ok: true, serverName: SNI })
    await nothingPublishedNothingCrashed(since, false)
  })

  it('hostile input - afterwards a signed push of a new commit is published above every generation served; --insecure-webhook accepts unsigned', async () => {
    // the zone's key now holds the attacker's last write (an old generation): the reconciler's CAS fails, it
    // re-reads KV and still publishes above what it wrote itself, so the egress takes it
    await repo.commit({
      'zones/zone-b.yaml': `${ingressYaml(up.port)}  - mesh: default\n    instances: 1\n    tags:\n      kuma.io/service: svc2\n`,
    })
    const body = JSON.stringify({ ref: 'refs/heads/main' })
    const res = await post(hookUrl(), body, { 'x-hub-signature-256': hubSignature(SECRET, body) })
    expect(res.status).toBe(202)
    await waitUntil(
      () => (egress.actor.getSnapshot().context.table?.generation ?? 0) > servedGeneration,
      20_000,
      'the egress serves the new commit',
    )
    expect(egress.actor.getSnapshot().context.table?.routes.map((r) => r.sni)).toContain('svc2{mesh=default}')
    expect((await tlsConnect(egressPort, SNI)).upstream).toBe('A')
    expect((await post(`${insecureHook.url}/hooks/git`, '{}')).status).toBe(202)
    expect(webhookPokes).toBe(1)
  })
})
