import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildHello, toRecords } from '../../egress/core/hello-builder.js'
import { keyFile } from '../../egress/identity/identity-store.js'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import { probe } from '../../egress/probe/probe.js'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import { tableKey } from '../../schemas/subjects.js'
import type { ZoneTable } from '../../schemas/table.js'
import { type CertResponder, createMeshCa, type Issued, type MeshCa, serveCertRequests } from '../helpers/mesh-ca.js'
import { type External, meshCall, mtlsTable, startPlainExternal, startTlsExternal } from '../helpers/mtls-fixtures.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { waitFor } from '../helpers/procfile.js'

/**
 * terminate-mtls end to end at the egress: a real nats-server, a certificate responder signing the egress's
 * CSRs with a test mesh CA (standing in for the reconciler's certificate service), real TLS callers with
 * workload certificates, real plain and TLS external services, and a raw passthrough upstream.
 */
let nats: NatsServer
let bus: Bus
let responder: CertResponder
let ca: MeshCa
let otherCa: MeshCa
let extCa: MeshCa
let plain: External
let secure: External
let raw: net.Server
const rawSeen: Buffer[] = []
let stateDir: string
let egress: EgressHandle
let port: number
let adminUrl: string
let web: Issued
let billing: Issued
let egressClient: Issued
let lifetimeMs = 3_600_000
let kvRev = 0
const logLines: string[] = []
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk))
      cb()
    },
  }),
)

const PLAIN = 'plain-api{mesh=default}'
const SECURE = 'secure-api{mesh=default}'
const PASS = 'orders{mesh=default}'
// TLS upstreams whose server identity check fails (or is skipped): same external server, other settings
const WRONG_NAME = 'wrong-name{mesh=default}'
const SKIP_NAME = 'skip-name{mesh=default}'
const WRONG_CA = 'wrong-ca{mesh=default}'

function table(generation: number): ZoneTable {
  return mtlsTable(
    [
      {
        sni: PLAIN,
        service: 'plain-api',
        upstreams: [{ address: '127.0.0.1', port: plain.port, weight: 1 }],
        allow: ['web'],
      },
      {
        sni: SECURE,
        service: 'secure-api',
        allow: ['*'],
        upstreams: [
          {
            address: '127.0.0.1',
            port: secure.port,
            weight: 1,
            tls: {
              enabled: true,
              serverName: 'api.example.test',
              caCert: extCa.certPem,
              clientCert: egressClient.cert,
              clientKey: egressClient.key,
            },
          },
        ],
      },
      ...[
        { sni: WRONG_NAME, service: 'wrong-name', serverName: 'other.example.test', caCert: extCa.certPem },
        {
          sni: SKIP_NAME,
          service: 'skip-name',
          serverName: 'other.example.test',
          caCert: extCa.certPem,
          skipHostnameVerification: true,
        },
        { sni: WRONG_CA, service: 'wrong-ca', serverName: 'api.example.test', caCert: otherCa.certPem },
      ].map(({ sni, service, ...tls }) => ({
        sni,
        service,
        allow: ['*'],
        upstreams: [{ address: '127.0.0.1', port: secure.port, weight: 1, tls: { enabled: true, ...tls } }],
      })),
      {
        sni: PASS,
        service: 'orders',
        mode: 'passthrough',
        upstreams: [{ address: '127.0.0.1', port: (raw.address() as net.AddressInfo).port, weight: 1 }],
      },
    ],
    [{ name: 'default', caCerts: [ca.certPem] }],
    generation,
  )
}

async function publish(t: ZoneTable): Promise<void> {
  const text = JSON.stringify(t)
  kvRev =
    kvRev === 0
      ? await bus.kv.tables.create(tableKey('zone-a'), text)
      : await bus.kv.tables.update(tableKey('zone-a'), text, kvRev)
}

function start(): EgressHandle {
  return runEgress({
    nats: { servers: [nats.url], stateDir, heartbeatMs: 500 },
    zone: 'zone-a',
    name: 'ze-a',
    instance: 'm1',
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    logger,
    graceMs: 500,
    certRequestTimeoutMs: 2000,
  })
}

const prometheus = async () => (await fetch(`${adminUrl}/stats/prometheus`)).text()
const rejected = (prom: string, reason: string) =>
  Number(new RegExp(`zonegate_egress_connections_rejected_total\\{reason="${reason}"\\} (\\d+)`).exec(prom)?.[1] ?? 0)

beforeAll(async () => {
  ;[nats, ca, otherCa, extCa] = await Promise.all([
    startNatsServer(),
    createMeshCa('default'),
    createMeshCa('other'),
    createMeshCa('external'),
  ])
  ;[web, billing, egressClient] = await Promise.all([
    ca.issueWorkload('web'),
    ca.issueWorkload('billing'),
    extCa.issueWorkload('egress-client'),
  ])
  plain = await startPlainExternal('plain-api')
  secure = await startTlsExternal('secure-api', await extCa.issueServer(['api.example.test']))
  raw = net.createServer((s) => {
    s.on('data', (d) => rawSeen.push(d))
    s.on('error', () => {})
    s.on('end', () => s.end('raw-ok\n'))
  })
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r))
  stateDir = await mkdtemp(join(tmpdir(), 'egress-mtls-'))
  bus = await connectBus({ servers: [nats.url], name: 'test-writer', log: pino({ level: 'silent' }) })
  await ensureNatsLayout(bus)
  responder = serveCertRequests(bus.nc, 'zone-a', [ca], () => lifetimeMs)
  await publish(table(1))
  egress = start()
  const ready = await egress.ready
  port = ready.listen.port
  adminUrl = `http://127.0.0.1:${ready.admin!.port}`
  await waitFor('identity installed', () => egress.identity.certOf('default') !== undefined, 15_000)
})

afterAll(async () => {
  await egress?.shutdown()
  await responder?.stop()
  await bus?.close()
  await nats?.stop()
  await Promise.all([plain?.close(), secure?.close(), new Promise((r) => raw?.close(r))])
  await rm(stateDir, { recursive: true, force: true })
})

describe('egress mtls', () => {
  it('egress mtls - the egress identity: a CSR per mesh, SAN spiffe://default/zone-egress, ALPN kuma', async () => {
    expect(responder.requests[0]).toMatchObject({ zone: 'zone-a', egress: 'ze-a', instance: 'm1', mesh: 'default' })
    expect(responder.requests[0]!.csr).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/)
    const r = await meshCall(port, PLAIN, ca.certPem, web)
    expect(r.authorized).toBe(true)
    expect(r.alpn).toBe('kuma')
    expect(r.egressSan).toContain('URI:spiffe://default/zone-egress')
    expect(r.egressSan).toContain('URI:kuma://kuma.io/service/zone-egress')
  })

  it('egress mtls - an allowed caller reaches a plain external service', async () => {
    const r = await meshCall(port, PLAIN, ca.certPem, web, 'hello plain')
    expect(r).toMatchObject({ answer: 'plain-api', echo: 'hello plain' })
  })

  it('egress mtls - the TLS external service sees the egress TLS, its SNI and client certificate', async () => {
    const r = await meshCall(port, SECURE, ca.certPem, billing, 'hello tls')
    expect(r).toMatchObject({ answer: 'secure-api', echo: 'hello tls' })
    expect(secure.seen.at(-1)).toEqual({ sni: 'api.example.test', clientSan: 'URI:spiffe://external/egress-client' })
  })

  it('egress mtls - no certificate, another mesh, an expired one and a caller without permission are refused', async () => {
    const expired = await ca.issueWorkload('web', { fromMs: -7200_000, untilMs: -3600_000 })
    const foreign = await otherCa.issueWorkload('web')
    const before = { plain: plain.accepts, prom: await prometheus() }
    const cases: [string, Issued | undefined, string][] = [
      ['none', undefined, 'mtls-no-client-cert'],
      ['other mesh', foreign, 'mtls-client-cert-untrusted'],
      ['expired', expired, 'mtls-client-cert-expired'],
      ['not allowed', billing, 'permission-denied'],
    ]
    for (const [what, cert, _reason] of cases) {
      const r = await meshCall(port, PLAIN, ca.certPem, cert, 'x')
      expect(r.answer, what).toBeUndefined()
      expect(r.error, what).toBeDefined()
    }
    expect(plain.accepts).toBe(before.plain)
    const after = await prometheus()
    for (const [what, , reason] of cases) {
      expect(rejected(after, reason) - rejected(before.prom, reason), `${what}: ${reason}`).toBe(1)
    }
  })

  it('egress mtls - large transfers both ways through a TLS upstream arrive intact under backpressure', async () => {
    const payload = Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 31 + (i >> 9)) & 0xff))
    const tls = await import('node:tls')
    const got = await new Promise<Buffer>((resolve, reject) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        servername: SECURE,
        ca: ca.certPem,
        ALPNProtocols: ['kuma'],
        cert: web.cert,
        key: web.key,
        checkServerIdentity: () => undefined,
      })
      const chunks: Buffer[] = []
      let size = 0
      const want = 'secure-api\n'.length + payload.length
      s.once('secureConnect', () => s.end(payload))
      s.on('data', (d: Buffer) => {
        chunks.push(d)
        size += d.length
        // a slow reader now and then: the egress must stop reading the upstream, not buffer without bound
        if (chunks.length % 16 === 0) {
          s.pause()
          setTimeout(() => s.resume(), 20)
        }
        if (size >= want) {
          s.destroy()
          resolve(Buffer.concat(chunks))
        }
      })
      s.on('error', reject)
      s.on('close', () => resolve(Buffer.concat(chunks)))
    })
    expect(got.subarray(0, 11).toString()).toBe('secure-api\n')
    expect(got.length - 11).toBe(payload.length)
    expect(got.subarray(11).equals(payload)).toBe(true)
  })

  it('egress mtls - the upstream is verified against caCert with an exact SAN match unless skipHostnameVerification', async () => {
    const before = await prometheus()
    const wrongName = await meshCall(port, WRONG_NAME, ca.certPem, web, 'x')
    expect(wrongName.answer).toBeUndefined()
    const wrongCa = await meshCall(port, WRONG_CA, ca.certPem, web, 'x')
    expect(wrongCa.answer).toBeUndefined()
    // both were refused for want of a usable upstream, after their caller had been let in
    const after = await prometheus()
    expect(rejected(after, 'upstream-unavailable') - rejected(before, 'upstream-unavailable')).toBe(2)
    const skipped = await meshCall(port, SKIP_NAME, ca.certPem, web, 'y')
    expect(skipped).toMatchObject({ answer: 'secure-api', echo: 'y' })
    expect(secure.seen.at(-1)?.sni).toBe('other.example.test')
  })

  it('egress mtls - no session is resumed: every caller connection is a full handshake, verified again', async () => {
    const first = await callKeepingSession(port, PLAIN, web)
    expect(first.answer).toBe('plain-api')
    expect(first.reused).toBe(false)
    // OpenSSL still sends (stateful) tickets; a client offering one must not get an abbreviated handshake
    expect(first.session).toBeDefined()
    const second = await callKeepingSession(port, PLAIN, web, first.session)
    expect(second).toMatchObject({ answer: 'plain-api', reused: false })
  })

  it('egress mtls - zonegate probe with --cert/--key/--ca shows allowed vs denied and the egress SANs', async () => {
    const base = { host: '127.0.0.1', port, sni: PLAIN, timeoutMs: 1500, ca: ca.certPem, verify: true, send: 'hi\n' }
    const ok = await probe({ ...base, cert: web.cert, key: web.key })
    expect(ok).toMatchObject({ handshake: true, alpn: 'kuma', authorized: true })
    expect(ok.peer?.san).toContain('URI:spiffe://default/zone-egress')
    expect(ok.received).toContain('plain-api\nhi\n')
    const denied = await probe({ ...base, cert: billing.cert, key: billing.key })
    expect(denied).toMatchObject({ handshake: false, outcome: 'closed' })
    expect(denied.detail).toMatch(/refused the certificate or the caller/)
    // without a certificate: refused too, and the probe says what the route wants
    const plainProbe = await probe({ host: '127.0.0.1', port, sni: PLAIN, timeoutMs: 1500 })
    expect(plainProbe).toMatchObject({ handshake: false, outcome: 'closed' })
    expect(plainProbe.detail).toMatch(/mesh mTLS: present a workload certificate with --cert\/--key/)
  })

  it('egress mtls - a passthrough route is relayed byte for byte, never terminated', async () => {
    const hello = toRecords(buildHello({ sni: [PASS] }))
    const tail = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff))
    const sent = Buffer.concat([hello, tail])
    rawSeen.length = 0
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write(sent.subarray(0, 100))
        s.end(sent.subarray(100))
      })
      let got = ''
      s.on('data', (d) => {
        got += d.toString()
      })
      s.on('close', () => resolve(got))
      s.on('error', reject)
    })
    expect(reply).toBe('raw-ok\n')
    expect(Buffer.concat(rawSeen).equals(sent)).toBe(true)
  })

  it('egress mtls - /config_dump redacts keys and shows identities without key material; logs hold no key', async () => {
    const text = await (await fetch(`${adminUrl}/config_dump`)).text()
    expect(text).not.toContain('PRIVATE KEY')
    const dump = JSON.parse(text) as {
      table: ZoneTable
      identity: { key: { stored: string }; meshes: Record<string, { state: string; serial: string }> }
    }
    const u = dump.table.routes.find((r) => r.sni === SECURE)!.upstreams[0]!
    expect(u.tls?.clientKey).toBe('[redacted]')
    expect(u.tls?.clientCert).toBe(egressClient.cert)
    expect(dump.identity.meshes.default).toMatchObject({ state: 'valid' })
    const keyPath = keyFile(stateDir, 'zone-a', 'ze-a')
    expect(dump.identity.key.stored).toBe(keyPath)
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600)
    const keyPem = await readFile(keyPath, 'utf8')
    const keyBody = keyPem.split('\n')[1]!
    const logs = logLines.join('')
    expect(logs).toContain('identity certificate installed')
    for (const secret of [keyBody, egressClient.key.split('\n')[1]!]) expect(logs).not.toContain(secret)
    expect(logs).not.toContain('PRIVATE KEY')
  })

  it('egress mtls - certificate rotation under load loses no connection', async () => {
    const first = egress.identity.certOf('default')!.serial
    // long-lived connections opened before the rotation keep working after it
    const longLived = await Promise.all(Array.from({ length: 4 }, () => meshCallOpen(port, PLAIN, ca.certPem, web)))
    lifetimeMs = 3000 // renewed at ~2 s from now on, by the actor itself
    egress.identity.renewAll()
    const serials = new Set<string>()
    let failures = 0
    let calls = 0
    const until = Date.now() + 6000
    while (Date.now() < until) {
      const batch = await Promise.all(Array.from({ length: 4 }, () => meshCall(port, PLAIN, ca.certPem, web, 'x')))
      for (const r of batch) {
        calls++
        if (r.echo !== 'x') failures++
        if (r.egressSerial) serials.add(r.egressSerial)
      }
    }
    lifetimeMs = 3_600_000
    egress.identity.renewAll()
    expect(calls).toBeGreaterThan(8)
    expect(failures).toBe(0)
    expect(serials.size).toBeGreaterThanOrEqual(2) // at least one rotation seen by new handshakes
    expect(egress.identity.certOf('default')!.serial).not.toBe(first)
    for (const c of longLived) expect(await c.echo('still-here')).toBe('still-here')
    for (const c of longLived) c.close()
  })

  it('egress mtls - an egress restarted with NATS down still terminates with its saved identity', async () => {
    await waitFor('long-lived cert saved', async () => {
      const c = egress.identity.certOf('default')
      return c !== undefined && c.notAfter - c.notBefore > 60_000
    })
    const serial = egress.identity.certOf('default')!.serial
    await new Promise((r) => setTimeout(r, 300)) // the certificate file is written after install
    await egress.shutdown()
    await nats.kill()
    egress = start()
    const ready = await egress.ready
    port = ready.listen.port
    adminUrl = `http://127.0.0.1:${ready.admin!.port}`
    const r = await meshCall(port, PLAIN, ca.certPem, web, 'offline')
    expect(r).toMatchObject({ answer: 'plain-api', echo: 'offline', egressSerial: serial })
    const denied = await meshCall(port, PLAIN, ca.certPem, billing, 'x')
    expect(denied.answer).toBeUndefined()
    await nats.restart()
  })
})

/** One call that keeps the last TLS session the egress handed out, optionally offering `session` to resume. */
function callKeepingSession(port: number, sni: string, client: Issued, session?: Buffer) {
  return new Promise<{ answer?: string; reused?: boolean; session?: Buffer; error?: string }>((resolve) => {
    void import('node:tls').then((tls) => {
      const r: { answer?: string; reused?: boolean; session?: Buffer; error?: string } = {}
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        servername: sni,
        ca: ca.certPem,
        ALPNProtocols: ['kuma'],
        cert: client.cert,
        key: client.key,
        checkServerIdentity: () => undefined,
        ...(session ? { session } : {}),
      })
      s.on('session', (sess: Buffer) => {
        r.session = sess
      })
      s.once('secureConnect', () => {
        r.reused = s.isSessionReused()
      })
      s.on('data', (d: Buffer) => {
        r.answer ??= d.toString().split('\n')[0]
        // give the tickets sent after the handshake time to arrive, then close
        setTimeout(() => s.end(), 100)
      })
      s.on('error', (err: NodeJS.ErrnoException) => {
        r.error = err.code ?? err.message
      })
      s.on('close', () => resolve(r))
    })
  })
}

/** A call kept open: resolves after the first line; `echo` sends a line and reads its echo. */
function meshCallOpen(port: number, sni: string, caPem: string, client: Issued) {
  return new Promise<{ echo(line: string): Promise<string>; close(): void }>((resolve, reject) => {
    const tlsMod = import('node:tls')
    void tlsMod.then((tls) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        servername: sni,
        ca: caPem,
        ALPNProtocols: ['kuma'],
        cert: client.cert,
        key: client.key,
        checkServerIdentity: () => undefined,
      })
      let buf = ''
      let waiter: ((line: string) => void) | undefined
      s.on('data', (d: Buffer) => {
        buf += d.toString()
        let nl = buf.indexOf('\n')
        while (nl >= 0) {
          const line = buf.slice(0, nl)
          buf = buf.slice(nl + 1)
          if (waiter) {
            const w = waiter
            waiter = undefined
            w(line)
          } else if (line === 'plain-api')
            resolve({
              echo: (l) =>
                new Promise<string>((res, rej) => {
                  waiter = res
                  s.once('close', () => rej(new Error('closed')))
                  s.write(`${l}\n`)
                }),
              close: () => s.destroy(),
            })
          nl = buf.indexOf('\n')
        }
      })
      s.on('error', reject)
    })
  })
}
