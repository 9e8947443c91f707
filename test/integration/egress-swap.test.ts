import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import { startUpstream, tableOf, tlsConnect, type Upstream, writeTable } from '../helpers/egress-fixtures.js'

/**
 * Hot swap under load: clients keep opening and streaming through the egress while the table is swapped
 * 100 times, alternating s.test between upstreams X and Y. No connection may fail, and connections opened
 * before the swaps keep echoing through their original upstream until the end.
 */
let x: Upstream
let y: Upstream
let egress: EgressHandle
let port: number
let dir: string

const tableFor = (g: number) =>
  tableOf(
    [
      { sni: 's.test', upstreams: [{ port: g % 2 === 0 ? x.port : y.port }] },
      { sni: 'both.test', upstreams: [{ port: x.port }, { port: y.port }] },
    ],
    g,
  )

beforeAll(async () => {
  ;[x, y] = await Promise.all([startUpstream('X'), startUpstream('Y')])
  dir = await mkdtemp(join(tmpdir(), 'egress-swap-'))
  await writeTable(`${dir}/table.json`, tableFor(0))
  egress = runEgress({
    staticFile: `${dir}/table.json`,
    listen: { host: '127.0.0.1', port: 0 },
    admin: false,
    logger: pino({ level: 'silent' }),
  })
  port = (await egress.ready).listen.port
})

afterAll(async () => {
  await egress?.shutdown()
  await Promise.all([x?.close(), y?.close()])
  await rm(dir, { recursive: true, force: true })
})

/** Writes a line and waits for its echo. */
function echo(s: TLSSocket, line: string): Promise<boolean> {
  return new Promise((resolve) => {
    let buf = ''
    const timer = setTimeout(() => done(false), 5000)
    const onData = (d: Buffer) => {
      buf += d.toString()
      if (buf.includes(line)) done(true)
    }
    const done = (ok: boolean) => {
      clearTimeout(timer)
      s.off('data', onData)
      resolve(ok)
    }
    s.on('data', onData)
    s.write(line)
  })
}

describe('egress swap', () => {
  it('egress swap - 100 swaps under load drop no connection and move none', async () => {
    // Long-lived connections opened before the swaps: they must stay on X (generation 0 routes s.test to X).
    const early = await Promise.all(Array.from({ length: 8 }, () => tlsConnect(port, 's.test', true)))
    expect(early.map((e) => e.upstream)).toEqual(Array(8).fill('X'))

    let swapping = true
    const failures: string[] = []
    const seen = { X: 0, Y: 0 }
    let opened = 0
    const worker = async (id: number) => {
      while (swapping) {
        const sni = id % 3 === 0 ? 'both.test' : 's.test'
        const c = await tlsConnect(port, sni, true)
        if (c.upstream === undefined) {
          failures.push(`${sni}: ${c.error}`)
          continue
        }
        opened++
        seen[c.upstream as 'X' | 'Y']++
        for (let i = 0; i < 3; i++) if (!(await echo(c.socket!, `w${id}-${i}\n`))) failures.push(`${sni}: lost echo`)
        c.socket!.destroy()
      }
    }
    const workers = Array.from({ length: 12 }, (_, i) => worker(i))

    const deadline = performance.now() + 30_000
    for (let g = 1; g <= 100 && performance.now() < deadline; g++) {
      egress.actor.send({ type: 'table.received', table: tableFor(g), source: 'file' })
      // a few ms between swaps so connections open on many different generations
      await new Promise((r) => setTimeout(r, 8))
      if (g % 25 === 0)
        for (const e of early) if (!(await echo(e.socket!, `early-${g}\n`))) failures.push('early: lost echo')
    }
    swapping = false
    await Promise.all(workers)

    const ctx = egress.actor.getSnapshot().context
    expect(ctx.swaps).toBe(101)
    expect(ctx.rejections).toBe(0)
    expect(failures).toEqual([])
    expect(opened).toBeGreaterThan(50)
    expect(seen.X).toBeGreaterThan(0)
    expect(seen.Y).toBeGreaterThan(0)
    for (const e of early) {
      expect(await echo(e.socket!, 'final\n')).toBe(true)
      e.socket!.destroy()
    }
  })
})
