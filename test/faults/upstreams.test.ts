import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import {
  closedPort,
  startUpstream,
  tableOf,
  tlsConnect,
  type Upstream,
  writeTable,
} from '../helpers/egress-fixtures.js'

/**
 * Upstream faults on a real egress (in-process, table file) with real TLS clients:
 * - an upstream that refuses (nothing listens on its port): the connection fails over at once;
 * - an upstream that never answers: a real listener (a Python socket with backlog 0 that never accepts) whose
 *   accept queue is filled first, so further SYNs are dropped by the kernel and the egress's connect hangs
 *   until its connect timeout, then fails over.
 * Every client connection must end at the healthy upstream, within the connect timeout plus a margin.
 */
const CONNECT_TIMEOUT_MS = 800
let dir: string
let good: Upstream
let refusing: number
let hole: ChildProcess
let holePort: number
const fillers: net.Socket[] = []
let egress: EgressHandle
let port: number
let adminUrl: string

async function startBlackhole(): Promise<{ proc: ChildProcess; port: number }> {
  const py = [
    'import socket, sys, time',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'print(s.getsockname()[1], flush=True)',
    'time.sleep(600)',
  ].join('\n')
  const proc = spawn('python3', ['-c', py], { stdio: ['ignore', 'pipe', 'inherit'] })
  const p = await new Promise<number>((resolve, reject) => {
    proc.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())))
    proc.once('exit', (c) => reject(new Error(`blackhole exited ${c}`)))
  })
  return { proc, port: p }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'faults-upstreams-'))
  ;[good, refusing] = await Promise.all([startUpstream('GOOD'), closedPort()])
  const bh = await startBlackhole()
  hole = bh.proc
  holePort = bh.port
  // fill the accept queue: afterwards the kernel drops new SYNs to this port (nobody ever accepts)
  for (let i = 0; i < 4; i++) {
    const s = net.connect(holePort, '127.0.0.1')
    s.on('error', () => {})
    fillers.push(s)
  }
  await new Promise((r) => setTimeout(r, 300))
  await writeTable(
    join(dir, 'table.json'),
    tableOf(
      [
        { sni: 'refused.test', upstreams: [{ port: refusing, weight: 5 }, { port: good.port }] },
        { sni: 'hole.test', upstreams: [{ port: holePort, weight: 5 }, { port: good.port }] },
      ],
      1,
    ),
  )
  egress = runEgress({
    staticFile: join(dir, 'table.json'),
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    proxy: { connectTimeoutMs: CONNECT_TIMEOUT_MS },
    logger: pino({ level: 'silent' }),
  })
  const ready = await egress.ready
  port = ready.listen.port
  adminUrl = `http://127.0.0.1:${ready.admin!.port}`
})

afterAll(async () => {
  await egress?.shutdown()
  for (const s of fillers) s.destroy()
  hole?.kill('SIGKILL')
  await good?.close()
  await rm(dir, { recursive: true, force: true })
})

const failures = async () =>
  ((await (await fetch(`${adminUrl}/stats`)).json()) as { upstreamConnectFailures: Record<string, number> })
    .upstreamConnectFailures

describe('faults: upstreams', () => {
  it('faults - an upstream that refuses: every connection fails over to the healthy one at once', async () => {
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now()
      expect(await tlsConnect(port, 'refused.test')).toEqual({ upstream: 'GOOD' })
      expect(performance.now() - t0).toBeLessThan(CONNECT_TIMEOUT_MS + 3000)
    }
    expect((await failures())[`127.0.0.1:${refusing}`]).toBeGreaterThanOrEqual(1)
  })

  it('faults - an upstream that never answers: connections fail over within the connect timeout', async () => {
    const before = (await failures())[`127.0.0.1:${holePort}`] ?? 0
    const results = await Promise.all(
      [0, 1, 2].map(async () => {
        const t0 = performance.now()
        const r = await tlsConnect(port, 'hole.test')
        return { r, ms: performance.now() - t0 }
      }),
    )
    for (const { r, ms } of results) {
      expect(r).toEqual({ upstream: 'GOOD' })
      expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS + 4000) // the timeout plus a generous margin for a loaded CI
    }
    // the hole was tried (and timed out) before failing over
    expect(((await failures())[`127.0.0.1:${holePort}`] ?? 0) - before).toBeGreaterThanOrEqual(1)
    expect(results.some(({ ms }) => ms >= CONNECT_TIMEOUT_MS * 0.9)).toBe(true)
  })
})
