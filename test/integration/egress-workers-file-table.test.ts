import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CliEgress, startCliEgress } from '../helpers/cli.js'
import { startUpstream, tableOf, tlsConnect, type Upstream, writeTable } from '../helpers/egress-fixtures.js'
import { waitFor } from '../helpers/procfile.js'

/**
 * A table too large to copy into each worker's channel (FILE_TABLE_MIN_BYTES of compact routes) reaches the
 * workers of `zonegate egress --workers 2` through one file of the primary's private directory: every worker
 * swaps to it, routes on it, the file is gone once all have it, and the directory once the egress stops.
 */
const FILLER = 8000 // ~1.9 MB of compact routes: over the 1 MiB threshold
let dir: string
let a: Upstream
let b: Upstream
let egress: CliEgress

/** The first log line `pred` accepts, once the egress has written it (≤ 30 s). */
async function logLine(pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  await waitFor('log line', () => egress.logLines().some(pred), 30_000)
  return egress.logLines().find(pred)!
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
  egress = await startCliEgress(
    ['--static', join(dir, 't.json'), '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2'],
    30_000,
    'debug',
  )
})

afterAll(async () => {
  if (egress?.child.exitCode === null) egress.child.kill('SIGKILL')
  await Promise.all([a?.close(), b?.close()])
  await rm(dir, { recursive: true, force: true })
})

describe('egress workers, large table', () => {
  it('egress workers - a large table reaches both workers through one file, removed once both swapped', async () => {
    const { port, child } = egress
    await logLine((l) => l.state === 'serving')
    expect(await tlsConnect(port, 'a.test')).toEqual({ upstream: 'A' })

    await writeTable(join(dir, 't.json'), bigTable(b.port, 2))
    child.kill('SIGHUP')
    const handed = await logLine((l) => l.msg === 'table handed to the workers in a file')
    expect(handed.bytes as number).toBeGreaterThan(1024 * 1024)
    const file = String(handed.file)
    expect(await logLine((l) => l.msg === 'table swapped' && l.generation === 2)).toMatchObject({
      routes: FILLER + 1,
    })
    // applied means every worker swapped: whichever worker accepts, the new table routes, filler routes too
    for (let i = 0; i < 8; i++) expect(await tlsConnect(port, 'a.test')).toEqual({ upstream: 'B' })
    expect(await tlsConnect(port, `r-${FILLER - 1}.test`)).toEqual({ upstream: 'B' })
    expect(existsSync(file)).toBe(false)
    expect(existsSync(dirname(file))).toBe(true)

    child.kill('SIGTERM')
    expect(await egress.exit).toBe(0)
    expect(existsSync(dirname(file))).toBe(false)
    // no worker refused or failed to read the file
    const trouble =
      /^(table file unreadable in worker|table refused by worker|worker did not take the table|table file not written)/
    expect(egress.logLines().filter((l) => trouble.test(String(l.msg)))).toEqual([])
  })
})
