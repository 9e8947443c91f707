import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { get, type IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CompactZoneTable } from '../../egress/core/compact-table.js'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import { startUpstream, tableOf, tlsConnect, type Upstream, writeTable } from '../helpers/egress-fixtures.js'
import { largeTable } from '../helpers/large-table.js'
import { route } from '../helpers/table.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * `--static` admission off the event loop (issue 15, decision 012): a 100,000-route table file given on SIGHUP
 * (`reload()`) is parsed and checked in the admission worker thread while the egress's event loop — here the test's
 * own, since the egress runs in this process with `workers: 1` — keeps proxying: connections through the egress
 * complete during the admission, and the longest gap between 5 ms heartbeats stays far below the admission's time.
 * /config_dump of that table writes its routes' JSON as held instead of parsing and re-serialising 100,000 routes on
 * the same loop. A file that is not JSON is still refused with where it went wrong, and the served table keeps
 * serving.
 */
let up: Upstream
let egress: EgressHandle
let port: number
let adminUrl: string
let dir: string
let big: ReturnType<typeof largeTable>
const lines: Record<string, unknown>[] = []

const file = () => join(dir, 'table.json')

beforeAll(async () => {
  up = await startUpstream('U')
  dir = await mkdtemp(join(tmpdir(), 'egress-static-admission-'))
  await writeTable(file(), tableOf([{ sni: 'u.test', upstreams: [{ port: up.port }] }], 1))
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    },
  })
  egress = runEgress({
    staticFile: file(),
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    workers: 1,
    logger: pino({ level: 'debug' }, sink),
  })
  const ready = await egress.ready
  port = ready.listen.port
  adminUrl = `http://127.0.0.1:${ready.admin!.port}`
})

afterAll(async () => {
  await egress?.shutdown()
  await up?.close()
  await rm(dir, { recursive: true, force: true })
})

const generation = () => egress.actor.getSnapshot().context.table?.generation

describe('egress static admission', () => {
  it('egress static admission - a 100,000-route file is admitted in a worker thread while the loop keeps proxying', async () => {
    expect((await tlsConnect(port, 'u.test')).upstream).toBe('U')
    big = largeTable(100_000, { generation: 2, extra: [route('u.test', up.port)] })
    await writeFile(file(), JSON.stringify(big))

    // heartbeat: the longest gap between 5 ms timers while the table is admitted
    let last = performance.now()
    let maxGap = 0
    const beat = setInterval(() => {
      const now = performance.now()
      maxGap = Math.max(maxGap, now - last)
      last = now
    }, 5)
    // clients: connections through the egress, each noted with the generation served when it completed
    let running = true
    const completed: (number | undefined)[] = []
    const failures: string[] = []
    const client = async () => {
      while (running) {
        const r = await tlsConnect(port, 'u.test')
        if (r.upstream === 'U') completed.push(generation())
        else failures.push(r.error ?? 'no answer')
      }
    }
    const clients = [client(), client()]
    try {
      await new Promise((r) => setTimeout(r, 100))
      last = performance.now()
      maxGap = 0
      const admitted = lines.length
      egress.reload()
      await waitUntil(() => generation() === 2, 30_000)
      const gapDuringAdmission = maxGap
      const log = lines.slice(admitted).find((l) => l.msg === 'table file admitted') as
        | { ms: number; thread: string; ok: boolean }
        | undefined
      expect(log).toMatchObject({ thread: 'worker', ok: true })
      // on the event loop, the loop would have stopped for the whole admission (0.3-0.4 s quiet, more on a busy box)
      expect(log!.ms).toBeGreaterThan(100)
      expect(gapDuringAdmission).toBeLessThan(log!.ms / 2)
      // connections completed on generation 1 while the big table was being admitted
      expect(completed.filter((g) => g === 1).length).toBeGreaterThan(2)
    } finally {
      running = false
      clearInterval(beat)
      await Promise.all(clients)
    }
    expect(failures).toEqual([])
    expect(completed.at(-1)).toBe(2)
    expect(egress.actor.getSnapshot().context.lastSwap).toMatchObject({ generation: 2, routes: 100_001 })
  })

  it('egress static admission - /config_dump writes the compact routes as held: the same table, without stopping the loop', async () => {
    expect(generation()).toBe(2)
    let last = performance.now()
    let maxGap = 0
    const beat = setInterval(() => {
      const now = performance.now()
      maxGap = Math.max(maxGap, now - last)
      last = now
    }, 5)
    let text: string
    try {
      text = await (await fetch(`${adminUrl}/config_dump`)).text()
    } finally {
      clearInterval(beat)
    }
    // parsing every route and serialising them again stopped this loop ~1 s here (longest gap 995 ms)
    expect(maxGap).toBeLessThan(250)
    const dump = JSON.parse(text) as { generation: number; table: unknown }
    expect(dump.generation).toBe(2)
    expect(dump.table).toEqual(big)
  })

  it('egress static admission - a file that is not JSON is refused with FILE:LINE:COLUMN; the served table stays', async () => {
    const before = egress.actor.getSnapshot().context.rejections
    await writeFile(file(), '{\n  "kind": "ZoneEgressTable",\n}\n')
    egress.reload()
    await waitUntil(() => egress.actor.getSnapshot().context.rejections === before + 1, 10_000)
    const r = egress.actor.getSnapshot().context.lastRejection
    expect(r).toMatchObject({ reason: 'load-failed', source: 'file' })
    expect(r?.problems[0]).toMatch(new RegExp(`^${file().replace(/[.]/g, '\\.')}:3:1: not JSON: `))
    expect(generation()).toBe(2)
    expect((await tlsConnect(port, 'u.test')).upstream).toBe('U')
  })

  it('egress static admission - a table replaced while /config_dump is being sent is released only after the answer', async () => {
    expect(generation()).toBe(2)
    const t2 = egress.actor.getSnapshot().context.table as CompactZoneTable
    // headers read, body not: the 17 MB answer waits in the egress's write queue (and the socket buffers)
    const res = await new Promise<IncomingMessage>((resolve, reject) =>
      get(`${adminUrl}/config_dump`, resolve).on('error', reject),
    )
    await writeTable(file(), tableOf([{ sni: 'u.test', upstreams: [{ port: up.port }] }], 3))
    egress.reload()
    await waitUntil(() => generation() === 3, 10_000)
    await new Promise((r) => setTimeout(r, 100))
    // replaced, but held by the answer being sent (holdCompact): released once the answer is closed
    expect(t2.compact.released).toBe(false)
    const chunks: Buffer[] = []
    for await (const c of res) chunks.push(c as Buffer)
    const dump = JSON.parse(Buffer.concat(chunks).toString()) as { generation: number; table: unknown }
    expect(dump.generation).toBe(2)
    expect(dump.table).toEqual(big)
    await waitUntil(() => t2.compact.released, 5000, 'the replaced table released after the answer')
    expect(t2.compact.json.buffer.byteLength).toBe(0)
    expect((await tlsConnect(port, 'u.test')).upstream).toBe('U')
  })
})
