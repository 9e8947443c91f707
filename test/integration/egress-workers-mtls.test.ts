import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import { tableKey } from '../../schemas/subjects.js'
import { type CliEgress, startCliEgress } from '../helpers/cli.js'
import { type CertResponder, createMeshCa, type Issued, type MeshCa, serveCertRequests } from '../helpers/mesh-ca.js'
import { type External, meshCall, mtlsTable, startPlainExternal } from '../helpers/mtls-fixtures.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { waitFor } from '../helpers/procfile.js'

/**
 * terminate-mtls through `zonegate egress --workers 2` (the built CLI): the identity lives in the primary (one CSR
 * per mesh for the whole egress) and reaches every worker over IPC, so callers are terminated, checked and relayed
 * by either worker, and a renewed certificate is served by both.
 */
const PLAIN = 'plain-api{mesh=default}'
let nats: NatsServer
let bus: Bus
let responder: CertResponder
let ca: MeshCa
let plain: External
let web: Issued
let billing: Issued
let stateDir: string
let egress: CliEgress
let port = 0
let adminUrl = ''

interface WorkerInfo {
  worker: number
  accepted: number | null
}
const stats = async () =>
  (await (await fetch(`${adminUrl}/stats`)).json()) as {
    connections: { mtlsTerminated: number; rejected: Record<string, number> }
    workers: WorkerInfo[]
  }

/** Calls as `who` until every worker has accepted `more` connections beyond `since`; returns every result. */
async function callThroughEveryWorker(who: Issued, since: Map<number, number>, more = 1) {
  const results = []
  for (let i = 0; i < 200; i++) {
    results.push(await meshCall(port, PLAIN, ca.certPem, who))
    if (i % 3 !== 2) continue
    const s = await stats()
    if (s.workers.every((w) => (w.accepted ?? 0) >= (since.get(w.worker) ?? 0) + more)) return results
  }
  throw new Error(`200 calls did not reach every worker: ${JSON.stringify((await stats()).workers)}`)
}
const acceptedNow = async () => new Map((await stats()).workers.map((w) => [w.worker, w.accepted ?? 0]))

beforeAll(async () => {
  ;[nats, ca] = await Promise.all([startNatsServer(), createMeshCa('default')])
  ;[web, billing] = await Promise.all([ca.issueWorkload('web'), ca.issueWorkload('billing')])
  plain = await startPlainExternal('plain-api')
  stateDir = await mkdtemp(join(tmpdir(), 'egress-workers-mtls-'))
  bus = await connectBus({ servers: [nats.url], name: 'test-writer', log: pino({ level: 'silent' }) })
  await ensureNatsLayout(bus)
  // 8 s certificates: renewed at about two thirds of their life, within the test
  responder = serveCertRequests(bus.nc, 'zone-a', [ca], () => 8000)
  const table = mtlsTable(
    [
      {
        sni: PLAIN,
        service: 'plain-api',
        upstreams: [{ address: '127.0.0.1', port: plain.port, weight: 1 }],
        allow: ['web'],
      },
    ],
    [{ name: 'default', caCerts: [ca.certPem] }],
    1,
  )
  await bus.kv.tables.create(tableKey('zone-a'), JSON.stringify(table))
  egress = await startCliEgress([
    '--zone',
    'zone-a',
    '--name',
    'ze-a',
    '--instance',
    'wm1',
    '--nats',
    nats.url,
    '--state-dir',
    stateDir,
    '--listen',
    '127.0.0.1:0',
    '--admin',
    '127.0.0.1:0',
    '--grace',
    '1s',
    '--workers',
    '2',
  ])
  ;({ port, adminUrl } = egress)
  await waitFor('identity installed', () => /"identity certificate installed"/.test(egress.output()), 15_000)
})

afterAll(async () => {
  if (egress && egress.child.exitCode === null) egress.child.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 300))
  if (egress && egress.child.exitCode === null) egress.child.kill('SIGKILL')
  await responder?.stop()
  await bus?.close()
  await nats?.stop()
  await plain?.close()
  await rm(stateDir, { recursive: true, force: true })
})

describe('egress workers mtls', () => {
  it('egress workers mtls - one certificate request for the egress; both workers terminate, check and relay', async () => {
    expect(responder.requests.filter((r) => r.mesh === 'default')).toHaveLength(1)
    const allowed = await callThroughEveryWorker(web, new Map())
    expect(allowed.every((r) => r.answer === 'plain-api' && r.alpn === 'kuma' && r.authorized)).toBe(true)
    expect(new Set(allowed.map((r) => r.egressSerial)).size).toBe(1)
    const denied = await callThroughEveryWorker(billing, await acceptedNow())
    expect(denied.every((r) => r.answer === undefined)).toBe(true)
    const s = await stats()
    expect(s.connections.mtlsTerminated).toBe(allowed.length)
    expect(s.connections.rejected['permission-denied']).toBe(denied.length)
  })

  it('egress workers mtls - a renewed certificate reaches both workers', async () => {
    const first = (await meshCall(port, PLAIN, ca.certPem, web)).egressSerial
    await waitFor('renewal', () => responder.requests.length >= 2, 15_000)
    await waitFor(
      'the new certificate served',
      async () => (await meshCall(port, PLAIN, ca.certPem, web)).egressSerial !== first,
      5000,
    )
    const after = await callThroughEveryWorker(web, await acceptedNow(), 2)
    const serials = new Set(after.slice(-6).map((r) => r.egressSerial))
    expect(serials.size).toBe(1)
    expect(serials.has(first)).toBe(false)
    expect(after.slice(-6).every((r) => r.answer === 'plain-api')).toBe(true)
  })
})
