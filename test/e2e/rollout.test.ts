import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { probe } from '../../egress/probe/probe.js'
import { Bucket, tableKey } from '../../schemas/subjects.js'
import { waitFor } from '../helpers/procfile.js'
import { cli, configDump, type Egress, openTls, probeCli, type System, startSystem, waitForReady } from './system.js'

/**
 * The whole system from real processes (built CLI): nats-server, `zonegate reconciler` on a scratch Git
 * repository seeded from gitops-example/, two zone-a egresses and one zone-b egress in NATS mode, TLS demo
 * upstreams. Commits go to the repository; the reconciler is asked to run at once over NATS
 * (`zonegate.cmd.reconcile`, as `zonegate reconcile` does) and also polls every second. The tests run in
 * order and share the system.
 */
let sys: System
let a1: Egress
const EGRESS = 'zones/zone-a/zone-egresses/egress-1.yaml'

const INGRESS_B = 'zones/zone-b/zone-ingresses/ingress-1.yaml'
/**
 * zone-b's ingress advertising `extra` services next to gitops-example's: each becomes a cross-zone
 * (passthrough) route of zone-a answered by the zi-b demo upstream. (External services would be mesh mTLS.)
 */
const ingressB = (...extra: string[]) =>
  `${sys.repo.files.get(INGRESS_B)!.split('\n# e2e\n')[0]}\n# e2e\n${extra
    .map(
      (name) =>
        `  - mesh: default\n    instances: 1\n    tags:\n      kuma.io/service: ${name}\n      kuma.io/zone: zone-b\n`,
    )
    .join('')}`
const sni = (service: string) => `${service}{mesh=default}`
const ask = async (port: number, service: string) =>
  probe({ host: '127.0.0.1', port, sni: sni(service), timeoutMs: 3000 })

/** `zonegate rollout watch --commit SHA --until converged --output json`: exit code, events, elapsed ms. */
async function watchCommit(sha: string, timeout = '15s') {
  const t0 = Date.now()
  const r = await cli([
    'rollout',
    'watch',
    '--commit',
    sha,
    '--until',
    'converged',
    '--timeout',
    timeout,
    '--nats',
    sys.nats.url,
    '--creds',
    sys.creds.viewer,
    '--output',
    'json',
  ])
  const events = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { type: string; [k: string]: unknown })
  return { code: r.code, events, stdout: r.stdout, ms: Date.now() - t0 }
}

beforeAll(async () => {
  sys = await startSystem({
    egresses: [
      { zone: 'zone-a', instance: 'a1' },
      { zone: 'zone-a', instance: 'a2' },
      { zone: 'zone-b', instance: 'b1' },
    ],
    egressArgs: ['--drain-period', '1s', '--grace', '1s'],
  })
  a1 = sys.egresses[0]!
}, 90_000)

afterAll(async () => {
  await sys?.stop()
})

describe('e2e rollout', () => {
  it('e2e - the system runs secured: NATS refuses a client without a token; tables are signed', async () => {
    const anonymous = await cli(['status', '--nats', sys.nats.url])
    expect(anonymous.code).toBe(2)
    expect(anonymous.stderr).toMatch(/refused the credentials/)
    const viewer = await cli(['status', '--nats', sys.nats.url, '--creds', sys.creds.viewer, '--output', 'json'])
    expect(viewer.code, viewer.stderr).toBe(0)
    // an egress token may not write the tables (the reconciler's token may)
    const zoneA = await cli(['reconcile', '--nats', sys.nats.url, '--creds', `${sys.authDir}/zone-a-egress.creds`])
    expect(zoneA.code).toBe(1)
    expect(zoneA.stderr).toMatch(/Permissions Violation/)
    const tables = await new Kvm(jetstream(sys.nc)).open(Bucket.Tables)
    expect((await tables.get(tableKey('zone-a')))?.json<{ signature?: { alg: string } }>().signature?.alg).toBe(
      'ed25519',
    )
    for (const e of sys.egresses) expect(e.proc.output()).not.toContain('NO TRUSTED KEY CONFIGURED')
  })

  it('e2e - a commit converges within 5 s and the new SNI routes to its upstream', async () => {
    expect((await ask(a1.port, 'shipping')).detail).toBe('unrecognized_name')
    const t0 = Date.now()
    const sha = await sys.commit({ [INGRESS_B]: ingressB('shipping') }, 'add shipping')
    const w = await watchCommit(sha)
    expect(w.code, w.stdout).toBe(0)
    expect(Date.now() - t0).toBeLessThan(5000)
    const converged = w.events.find((e) => e.type === 'rollout.converged' && e.zone === 'zone-a')
    expect(converged?.instances).toEqual(expect.arrayContaining(['ze-a/a1', 'ze-a/a2']))
    for (const e of sys.egresses.filter((x) => x.zone === 'zone-a')) {
      const r = await probeCli(e.port, sni('shipping'))
      expect(r).toMatchObject({ handshake: true, answer: 'zi-b' })
    }
  })

  it('e2e - a commit that removes a route: new connections refused, open ones drained', async () => {
    const open = await openTls(a1.port, sni('shipping'))
    let closedAt = 0
    void open.closed.then(() => {
      closedAt = Date.now()
    })
    const t0 = Date.now()
    const sha = await sys.commit({ [INGRESS_B]: ingressB() }, 'remove shipping')
    const w = await watchCommit(sha)
    expect(w.code, w.stdout).toBe(0)
    const refused = await ask(a1.port, 'shipping')
    expect(refused).toMatchObject({ handshake: false, detail: 'unrecognized_name' })
    // the open connection is closed by the egress --drain-period (1 s) after the swap, which follows the commit
    await waitFor('open connection drained', () => closedAt > 0, 8000)
    expect(closedAt - t0).toBeGreaterThanOrEqual(950)
    expect((await ask(a1.port, 'billing')).answer).toBe('zi-b')
  })

  it('e2e - an invalid commit: invalid event with file:line, traffic unchanged', async () => {
    const before = await configDump(a1)
    const bad = sys.repo.files.get(EGRESS)!.replace('port: 10002', 'port: 70000')
    const sha = await sys.commit({ [EGRESS]: bad }, 'bad port')
    const w = await watchCommit(sha)
    expect(w.code).toBe(1)
    const invalid = w.events.find((e) => e.type === 'commit.invalid') as
      | { violations: { file: string; line: number; path: string }[] }
      | undefined
    expect(invalid?.violations).toEqual(
      expect.arrayContaining([expect.objectContaining({ file: EGRESS, line: 6, path: 'networking.port' })]),
    )
    expect((await ask(a1.port, 'billing')).answer).toBe('zi-b')
    expect((await configDump(a1)).generation).toBe(before.generation)
  })

  it('e2e - an egress started after a commit converges by itself', async () => {
    const fixed = sys.repo.files.get(EGRESS)!.replace('port: 70000', 'port: 10002')
    const sha = await sys.commit({ [EGRESS]: fixed, [INGRESS_B]: ingressB('tracking') }, 'fix port, add tracking')
    expect((await watchCommit(sha)).code).toBe(0)
    const a3 = await sys.startEgress('zone-a', 'a3')
    await waitForReady(a3)
    expect((await ask(a3.port, 'tracking')).answer).toBe('zi-b')
    const zone = await sys.zone('zone-a')
    expect((await configDump(a3)).digest).toBe(zone?.digest)
    await waitFor(
      'a3 reported current',
      async () => (await sys.zone('zone-a'))?.rollout?.current.includes('ze-a/a3') === true,
      10_000,
    )
  })

  it('e2e - NATS killed and restarted: egresses keep serving and resync to a commit made meanwhile', async () => {
    await sys.nats.kill()
    await waitFor('a1 degraded', async () => (await configDump(a1)).state === 'degraded', 5000)
    expect((await ask(a1.port, 'tracking')).answer).toBe('zi-b')
    await sys.repo.commit({ [INGRESS_B]: ingressB('tracking', 'outage') }, 'during the outage')
    await new Promise((r) => setTimeout(r, 1200)) // the reconciler polls (1 s) and cannot publish
    expect((await ask(a1.port, 'outage')).detail).toBe('unrecognized_name')
    await sys.nats.restart()
    for (const e of sys.egresses.filter((x) => x.zone === 'zone-a'))
      await waitFor(`${e.instance} resynced`, async () => (await ask(e.port, 'outage')).answer === 'zi-b', 15_000)
    expect((await configDump(a1)).state).toBe('serving')
  })

  it('e2e - an egress started while NATS is down serves its saved table', async () => {
    const gen = (await configDump(a1)).generation
    await sys.nats.kill()
    const a4 = await sys.startEgress('zone-a', 'a4')
    await waitForReady(a4)
    expect(await configDump(a4)).toMatchObject({ state: 'degraded', generation: gen })
    expect((await ask(a4.port, 'outage')).answer).toBe('zi-b')
    expect((await ask(a4.port, 'billing')).answer).toBe('zi-b')
  })
})
