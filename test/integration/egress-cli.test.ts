import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startUpstream, tableOf, tlsConnect, type Upstream, writeTable } from '../helpers/egress-fixtures.js'

/**
 * `zonegate egress --static` with the default `--workers` (one per core) as a real process tree (the built dist/): routing, SIGHUP reload (a good table
 * is applied, a bad one rejected while the last good one keeps serving) and SIGTERM drain (stop accepting,
 * wait for the open connection, exit 0).
 */
const root = resolve(import.meta.dirname, '../..')
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
      if (Date.now() - started > timeoutMs) return rej(new Error(`log line not seen; got ${JSON.stringify(logs)}`))
      setTimeout(tick, 20)
    }
    tick()
  })
}

beforeAll(async () => {
  // dist/ is built by vitest's global setup (test/helpers/global-build.ts)
  dir = await mkdtemp(join(tmpdir(), 'egress-cli-'))
  ;[a, b] = await Promise.all([startUpstream('A'), startUpstream('B')])
  await writeTable(join(dir, 't.json'), tableOf([{ sni: 'a.test', upstreams: [{ port: a.port }] }], 1))
  child = spawn(
    process.execPath,
    // no --workers: the default, one worker per core (decision 015; 2 on the build machine), the one test that
    // serves traffic with it (the others pass --workers 1, or 2 where workers are the subject): the static file,
    // SIGHUP and SIGTERM go through the primary to every worker
    [join(root, 'dist/cli/main.js'), 'egress', '--static', join(dir, 't.json'), '--name', 'ze-a', '--zone', 'zone-a'],
    { env: { ...process.env, PORT: '0', LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
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

describe('egress cli', () => {
  it('egress cli - routes, reloads on SIGHUP, rejects a bad table and drains on SIGTERM', async () => {
    const up = await waitLog((l) => l.msg === 'listener up')
    const port = Number(String(up.listen).split(':').pop())
    expect(port).toBeGreaterThan(0) // PORT=0 overrode the table's port 10002
    expect(up.workers ?? 1).toBe(availableParallelism()) // the default --workers
    await waitLog((l) => l.state === 'serving')
    expect(await tlsConnect(port, 'a.test')).toEqual({ upstream: 'A' })

    await writeTable(join(dir, 't.json'), tableOf([{ sni: 'a.test', upstreams: [{ port: b.port }] }], 2))
    child.kill('SIGHUP')
    const swapped = await waitLog((l) => l.msg === 'table swapped' && l.generation === 2)
    expect(swapped).toMatchObject({ routes: 1 })
    expect(await tlsConnect(port, 'a.test')).toEqual({ upstream: 'B' })

    const bad = {
      ...tableOf([{ sni: 'a.test', upstreams: [{ port: a.port }] }], 3),
      digest: `sha256:${'1'.repeat(64)}`,
    }
    await writeTable(join(dir, 't.json'), bad)
    child.kill('SIGHUP')
    expect(await waitLog((l) => l.msg === 'table rejected')).toMatchObject({ reason: 'digest-mismatch', generation: 3 })
    expect(await tlsConnect(port, 'a.test')).toEqual({ upstream: 'B' })

    const open = await tlsConnect(port, 'a.test', true)
    child.kill('SIGTERM')
    await waitLog((l) => l.state === 'draining')
    expect((await tlsConnect(port, 'a.test')).error).toBe('ECONNREFUSED')
    open.socket!.write('during drain\n')
    const echoed = await new Promise<string>((r) => open.socket!.once('data', (d) => r(d.toString())))
    expect(echoed).toBe('during drain\n')
    expect(child.exitCode).toBeNull()
    open.socket!.end()
    expect(await exit).toBe(0)
    expect(logs.at(-1)).toMatchObject({ msg: 'egress stopped' })
  })
})
