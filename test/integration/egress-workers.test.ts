import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import type { RolloutAppliedEvent } from '../../schemas/events.js'
import { rolloutSubjects, tableKey } from '../../schemas/subjects.js'
import type { ZoneTable } from '../../schemas/table.js'
import { type CliEgress, startCliEgress } from '../helpers/cli.js'
import { startUpstream, tableOf, tlsConnect, type Upstream, writeTable } from '../helpers/egress-fixtures.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { waitFor } from '../helpers/procfile.js'

/**
 * `zonegate egress --workers 2` as a real process tree (the built CLI, cluster workers) on a real nats-server and
 * real TLS upstreams: a table change reaches every worker before `applied` is published, connections accepted by
 * either worker route on the current table, /stats and /stats/prometheus add the workers up, a killed worker is
 * replaced and serves the current table, and SIGTERM drains every worker.
 */
const silent = pino({ level: 'silent' })
let nats: NatsServer
let bus: Bus
let watcher: NatsConnection
let events: Subscription
const applied: RolloutAppliedEvent[] = []
let a: Upstream
let b: Upstream
let stateDir: string
let egress: CliEgress
let port = 0
let adminUrl = ''
let kvRev = 0

interface WorkerInfo {
  worker: number
  pid: number | null
  listening: boolean
  generation: number | null
  restarts: number
  accepted: number | null
  active: number | null
}
interface Stats {
  generation: number | null
  connections: { accepted: number; active: number; routed: number }
  workers: WorkerInfo[]
}

const table = (g: number, upstreamPort: number): ZoneTable => ({
  ...tableOf([{ sni: 'svc.test', upstreams: [{ port: upstreamPort }] }], g),
  revision: `main@sha1:${g.toString(16).padStart(40, '0')}`,
})

async function publish(value: ZoneTable): Promise<void> {
  const text = JSON.stringify(value)
  kvRev =
    kvRev === 0
      ? await bus.kv.tables.create(tableKey('zone-a'), text)
      : await bus.kv.tables.update(tableKey('zone-a'), text, kvRev)
}

const stats = async () => (await (await fetch(`${adminUrl}/stats`)).json()) as Stats
const configDump = async () =>
  (await (await fetch(`${adminUrl}/config_dump`)).json()) as { generation: number; workers: WorkerInfo[] }
const logLines = () => egress.logLines()

/**
 * Opens connections (one at a time, each answered and closed) until every worker has accepted at least `more`
 * connections beyond `since`; returns every answer. Fails after `max` connections.
 */
async function throughEveryWorker(since: Map<number, number>, more = 1, max = 400): Promise<string[]> {
  const answers: string[] = []
  for (let i = 0; i < max; i++) {
    answers.push((await tlsConnect(port, 'svc.test')).upstream ?? 'failed')
    if (i % 5 !== 4) continue
    const s = await stats()
    if (s.workers.every((w) => (w.accepted ?? 0) >= (since.get(w.worker) ?? 0) + more)) return answers
  }
  throw new Error(`${max} connections did not reach every worker: ${JSON.stringify((await stats()).workers)}`)
}

const acceptedNow = async () => new Map((await stats()).workers.map((w) => [w.worker, w.accepted ?? 0]))

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

beforeAll(async () => {
  ;[a, b, nats] = await Promise.all([startUpstream('A'), startUpstream('B'), startNatsServer()])
  stateDir = await mkdtemp(join(tmpdir(), 'egress-workers-'))
  bus = await connectBus({ servers: [nats.url], name: 'test-writer', log: silent })
  await ensureNatsLayout(bus)
  watcher = await connect({ servers: nats.url })
  events = watcher.subscribe(rolloutSubjects('zone-a'), {
    callback: (_err, m) => {
      const e = m.json<RolloutAppliedEvent>()
      if (e.type === 'rollout.applied') applied.push(e)
    },
  })
  await publish(table(1, a.port))
  egress = await startCliEgress([
    '--zone',
    'zone-a',
    '--name',
    'ze-a',
    '--instance',
    'w1',
    '--nats',
    nats.url,
    '--state-dir',
    stateDir,
    '--listen',
    '127.0.0.1:0',
    '--admin',
    '127.0.0.1:0',
    '--heartbeat',
    '500ms',
    '--grace',
    '20s',
    '--workers',
    '2',
  ])
  ;({ port, adminUrl } = egress)
})

afterAll(async () => {
  if (egress && egress.child.exitCode === null) egress.child.kill('SIGKILL')
  events?.unsubscribe()
  await watcher?.close()
  await bus?.close()
  await nats?.stop()
  await Promise.all([a?.close(), b?.close()])
  await rm(stateDir, { recursive: true, force: true })
})

describe('egress workers', () => {
  it('egress workers - two workers start on the KV table; both route, and the admin adds them up', async () => {
    await waitFor('applied gen 1', () => applied.some((e) => e.generation === 1), 10_000)
    const dump = await configDump()
    expect(dump.generation).toBe(1)
    expect(dump.workers.map((w) => [w.worker, w.listening, w.generation])).toEqual([
      [1, true, 1],
      [2, true, 1],
    ])
    const pids = dump.workers.map((w) => w.pid!)
    expect(new Set([...pids, egress.child.pid]).size).toBe(3)
    const answers = await throughEveryWorker(new Map())
    expect(new Set(answers)).toEqual(new Set(['A']))

    const s = await stats()
    expect(s.connections.accepted).toBe(s.workers.reduce((n, w) => n + w.accepted!, 0))
    expect(s.connections.accepted).toBeGreaterThanOrEqual(answers.length)
    const text = await (await fetch(`${adminUrl}/stats/prometheus`)).text()
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])
    const perWorker = [1, 2].map((w) =>
      Number(new RegExp(`^zonegate_egress_worker_connections_total\\{worker="${w}"\\} (\\S+)$`, 'm').exec(text)?.[1]),
    )
    expect(perWorker.every((n) => n > 0)).toBe(true)
    expect(value('zonegate_egress_connections_total')).toBe(perWorker[0]! + perWorker[1]!)
    expect(value('zonegate_egress_connections_total')).toBeGreaterThanOrEqual(s.connections.accepted)
    expect(Number(/^zonegate_egress_route_connections_total\{sni="svc.test"\} (\S+)$/m.exec(text)?.[1])).toBe(
      value('zonegate_egress_connections_total'),
    )
    expect(value('zonegate_egress_table_generation')).toBe(1)
    expect(value('zonegate_egress_ready')).toBe(1)
    expect(text.match(/^zonegate_build_info\{.*\} (\S+)$/gm)).toEqual([expect.stringMatching(/ 1$/)]) // the primary's, once
    expect(text).toMatch(/^zonegate_egress_client_hello_duration_seconds_count \d+/m)
    expect(text).toMatch(/^process_cpu_seconds_total \S+/m)
  })

  it('egress workers - applied is published only once every worker has swapped; no worker then routes on the old table', async () => {
    const before = await acceptedNow()
    // worker 2 is stopped (SIGSTOP) while the table arrives: it cannot swap, so applied must wait for it
    const pids = (await configDump()).workers.map((w) => w.pid)
    const stopped = (await configDump()).workers[1]!
    process.kill(stopped.pid!, 'SIGSTOP')
    try {
      await publish(table(2, b.port))
      await waitFor('worker 1 on gen 2', async () => (await configDump()).workers[0]!.generation === 2, 10_000)
      await new Promise((r) => setTimeout(r, 1500))
      expect((await configDump()).workers.map((w) => w.generation)).toEqual([2, 1])
      expect(applied.some((e) => e.generation === 2)).toBe(false)
    } finally {
      process.kill(stopped.pid!, 'SIGCONT')
    }
    await waitFor('applied gen 2', () => applied.some((e) => e.generation === 2), 10_000)
    // the same two processes (the stopped one was waited for, not replaced), both on generation 2
    expect((await configDump()).workers.map((w) => [w.pid, w.generation])).toEqual([
      [pids[0], 2],
      [pids[1], 2],
    ])
    const ev = applied.find((e) => e.generation === 2)!
    expect(ev).toMatchObject({ instance: 'w1', digest: table(2, b.port).digest })
    const answers = await throughEveryWorker(before)
    expect(new Set(answers)).toEqual(new Set(['B']))
    const lines = logLines().filter((l) => l.msg === 'table swapped' && l.generation === 2)
    expect(lines).toHaveLength(1) // one lifecycle, in the primary
  })

  it('egress workers - a killed worker is replaced, gets the current table before it accepts, and routes on it', async () => {
    const dump = await configDump()
    const victim = dump.workers[0]!
    process.kill(victim.pid!, 'SIGKILL')
    await waitFor(
      'worker 1 replaced',
      async () => {
        const w = (await configDump()).workers[0]!
        return w.pid !== victim.pid && w.listening && w.restarts === 1
      },
      15_000,
    )
    expect(alive(victim.pid!)).toBe(false)
    const w1 = (await configDump()).workers[0]!
    expect(w1.generation).toBe(2)
    // the replacement counts from 0: every worker must take new connections, all on generation 2 (upstream B)
    const answers = await throughEveryWorker(new Map([[1, 0]]), 3)
    expect(new Set(answers)).toEqual(new Set(['B']))
    expect((await fetch(`${adminUrl}/ready`)).status).toBe(200)
    // and a later table reaches it too before applied
    await publish(table(3, a.port))
    await waitFor('applied gen 3', () => applied.some((e) => e.generation === 3), 10_000)
    expect((await configDump()).workers.map((w) => w.generation)).toEqual([3, 3])
    expect(new Set(await throughEveryWorker(await acceptedNow()))).toEqual(new Set(['A']))
  })

  it('egress workers - SIGTERM drains every worker: no new connection, open ones finish, then all exit 0', async () => {
    // hold connections until each worker has one open
    const held: TLSSocket[] = []
    await waitFor(
      'a held connection on each worker',
      async () => {
        const r = await tlsConnect(port, 'svc.test', true)
        if (r.socket) held.push(r.socket)
        return (await stats()).workers.every((w) => (w.active ?? 0) > 0)
      },
      20_000,
    )
    const pids = (await configDump()).workers.map((w) => w.pid!)
    egress.child.kill('SIGTERM')
    await waitFor('draining', () => logLines().some((l) => l.msg === 'draining'), 5000)
    await waitFor('listeners closed', async () => (await tlsConnect(port, 'svc.test')).upstream === undefined, 5000)
    // the held connections still relay (the upstream echoes)
    for (const s of held) {
      const echoed = new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString())))
      s.write('ping\n')
      expect(await echoed).toBe('ping\n')
    }
    expect(egress.child.exitCode).toBeNull()
    expect(pids.every(alive)).toBe(true)
    const t0 = Date.now()
    for (const s of held) s.destroy()
    expect(await egress.exit).toBe(0)
    expect(Date.now() - t0).toBeLessThan(10_000) // well before the 20 s grace
    await waitFor('workers gone', () => pids.every((p) => !alive(p)), 5000)
    const drained = logLines().find((l) => l.msg === 'drained')
    expect(drained).toMatchObject({ destroyed: 0 })
  })
})

describe('egress workers admin drain', () => {
  it('egress workers - /drain_listeners closes every worker listener, restarts no worker, and /quitquitquit ends them all', async () => {
    const file = join(stateDir, 'static.json')
    await writeTable(file, tableOf([{ sni: 'svc.test', upstreams: [{ port: a.port }] }], 1))
    const p = await startCliEgress([
      '--static',
      file,
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--grace',
      '20s',
      '--workers',
      '2',
    ])
    const { port: listen, adminUrl: admin } = p
    try {
      const held = await tlsConnect(listen, 'svc.test', true)
      expect(held.upstream).toBe('A')
      const workers = async () =>
        ((await (await fetch(`${admin}/config_dump`)).json()) as { workers: WorkerInfo[] }).workers
      const pids = (await workers()).map((w) => w.pid!)
      expect((await fetch(`${admin}/drain_listeners`, { method: 'POST' })).status).toBe(200)
      await waitFor('listeners closed', async () => (await tlsConnect(listen, 'svc.test')).upstream === undefined, 5000)
      expect((await fetch(`${admin}/ready`)).status).toBe(503)
      // the open connection still relays
      const echoed = new Promise<string>((r) => held.socket!.once('data', (d: Buffer) => r(d.toString())))
      held.socket!.write('still\n')
      expect(await echoed).toBe('still\n')
      // a worker that dies while drained is not replaced (it would listen again)
      process.kill(pids[0]!, 'SIGKILL')
      await waitFor('worker 1 gone', () => !alive(pids[0]!), 5000)
      await new Promise((r) => setTimeout(r, 1000))
      // worker 2 lives on (its open connections may finish), listening on nothing; worker 1 stays gone
      expect((await workers()).map((w) => [w.pid, w.listening, w.restarts])).toEqual([
        [null, false, 0],
        [pids[1], false, 0],
      ])
      expect(alive(pids[1]!)).toBe(true)
      expect((await tlsConnect(listen, 'svc.test')).upstream).toBeUndefined()
      held.socket!.destroy()
      expect((await fetch(`${admin}/quitquitquit`, { method: 'POST' })).status).toBe(200)
      expect(await p.exit).toBe(0)
      await waitFor('workers gone', () => pids.every((pid) => !alive(pid)), 5000)
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL')
    }
  })
})
