import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startUpstream, tableOf, tlsConnect, type Upstream, writeTable } from '../helpers/egress-fixtures.js'

/**
 * A table too large to copy into each worker's channel (FILE_TABLE_MIN_BYTES of compact routes) reaches the
 * workers of `zonegate egress --workers 2` through one file of the primary's private directory: every worker
 * swaps to it, routes on it, the file is gone once all have it, and the directory once the egress stops.
 */
const root = resolve(import.meta.dirname, '../..')
const FILLER = 8000 // ~1.9 MB of compact routes: over the 1 MiB threshold
let dir: string
let a: Upstream
let b: Upstream
let child: ChildProcess
const logs: Record<string, unknown>[] = []
let exit: Promise<number | null>

function waitLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    const started = Date.now()
    const tick = () => {
      const hit = logs.find(pred)
      if (hit) return res(hit)
      if (Date.now() - started > timeoutMs) return rej(new Error(`log line not seen; got ${logs.length} lines`))
      setTimeout(tick, 20)
    }
    tick()
  })
}

const bigTable = (port: number, generation: number) =>
  tableOf(
    [
      { sni: 'a.test', upstreams: [{ port }] },
      ...Array.from({ length: FILLER }, (_, i) => ({ sni: `r-${i}.test`, upstreams: [{ port }] })),
    ],
    generation,
  )

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'egress-file-table-'))
  ;[a, b] = await Promise.all([startUpstream('A'), startUpstream('B')])
  await writeTable(join(dir, 't.json'), bigTable(a.port, 1))
  child = spawn(
    process.execPath,
    [join(root, 'dist/cli/main.js'), 'egress', '--static', join(dir, 't.json'), '--workers', '2'],
    { env: { ...process.env, PORT: '0', LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  process.once('exit', () => child.kill('SIGKILL'))
  let pending = ''
  child.stdout!.on('data', (d: Buffer) => {
    pending += d.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const l of lines) if (l.trim()) logs.push(JSON.parse(l) as Record<string, unknown>)
  })
  exit = new Promise((r) => child.once('exit', (code) => r(code)))
})

afterAll(async () => {
  if (child.exitCode === null) child.kill('SIGKILL')
  await Promise.all([a?.close(), b?.close()])
  await rm(dir, { recursive: true, force: true })
})

describe('egress workers, large table', () => {
  it('egress workers - a large table reaches both workers through one file, removed once both swapped', async () => {
    const up = await waitLog((l) => l.msg === 'listener up')
    const port = Number(String(up.listen).split(':').pop())
    await waitLog((l) => l.state === 'serving')
    expect(await tlsConnect(port, 'a.test')).toEqual({ upstream: 'A' })

    await writeTable(join(dir, 't.json'), bigTable(b.port, 2))
    child.kill('SIGHUP')
    const handed = await waitLog((l) => l.msg === 'table handed to the workers in a file')
    expect(handed.bytes as number).toBeGreaterThan(1024 * 1024)
    const file = String(handed.file)
    expect(await waitLog((l) => l.msg === 'table swapped' && l.generation === 2)).toMatchObject({
      routes: FILLER + 1,
    })
    // applied means every worker swapped: whichever worker accepts, the new table routes, filler routes too
    for (let i = 0; i < 8; i++) expect(await tlsConnect(port, 'a.test')).toEqual({ upstream: 'B' })
    expect(await tlsConnect(port, `r-${FILLER - 1}.test`)).toEqual({ upstream: 'B' })
    expect(existsSync(file)).toBe(false)
    expect(existsSync(dirname(file))).toBe(true)

    child.kill('SIGTERM')
    expect(await exit).toBe(0)
    expect(existsSync(dirname(file))).toBe(false)
    // no worker refused or failed to read the file
    const trouble =
      /^(table file unreadable in worker|table refused by worker|worker did not take the table|table file not written)/
    expect(logs.filter((l) => trouble.test(String(l.msg)))).toEqual([])
  })
})
