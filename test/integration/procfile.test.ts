import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { probe } from '../../egress/probe/probe.js'
import {
  freePort,
  type RunningProcess,
  readProcfile,
  repoRoot,
  startForeman,
  startProcess,
  stopAll,
  waitForOutput,
  waitForPort,
} from '../helpers/procfile.js'

/** The Procfile and test/helpers/procfile.ts: real processes (the built demo upstream), real foreman. */
const running: RunningProcess[] = []
let scratch: string | undefined

afterAll(async () => {
  await stopAll(running.splice(0), 3000)
  if (scratch) await rm(scratch, { recursive: true, force: true })
})

describe('procfile', () => {
  it('procfile - declares the system processes; egress ports come from PORT', () => {
    const entries = readProcfile()
    expect(entries.map((e) => e.name).slice(0, 4)).toEqual(['nats', 'reconciler', 'egress', 'egress_b'])
    const byName = Object.fromEntries(entries.map((e) => [e.name, e.command]))
    for (const egress of ['egress', 'egress_b']) {
      expect(byName[egress]).toContain('--listen 127.0.0.1:$PORT')
      expect(byName[egress]).toContain('--admin 127.0.0.1:$((PORT + 50))')
    }
    // fixed-port processes never use PORT
    for (const e of entries.filter((x) => !x.name.startsWith('egress'))) expect(e.command).not.toContain('$PORT')
    expect(byName.nats).toContain('-js -sd .data/nats')
    for (const e of entries) expect(e.command).toMatch(/^exec (node dist\/|nats-server )/)
  })

  it('procfile - starts a Procfile process on an overridden port and stops it by pid', async () => {
    const entry = readProcfile().find((e) => e.name === 'ingress_b')
    expect(entry).toBeDefined()
    const port = await freePort()
    const p = startProcess(entry!, { replace: { '127.0.0.1:10011': `127.0.0.1:${port}` } })
    running.push(p)
    await waitForOutput(p, /listening on/)
    const r = await probe({ host: '127.0.0.1', port, sni: 'billing{mesh=default}', timeoutMs: 5000 })
    expect(r.answer).toBe('zi-b')
    expect(await p.stop()).toBe(0)
  })

  it('procfile - foreman -m runs replicas on base + 100 × index + n − 1 with PS', async () => {
    scratch = await mkdtemp(join(tmpdir(), 'zonegate-foreman-'))
    const upstream = resolve(repoRoot, 'dist/demo/upstream.js')
    await writeFile(
      join(scratch, 'Procfile'),
      `other: exec sleep 30\nup: exec node ${upstream} --listen 127.0.0.1:$PORT --name up-$PS\n`,
    )
    const base = 20000 + Math.floor(Math.random() * 400) * 100
    const fm = startForeman({ cwd: scratch, formation: 'all=0,up=3', basePort: base, timeoutS: 5 })
    running.push(fm)
    const ports = [base + 100, base + 101, base + 102]
    for (const port of ports) await waitForPort('127.0.0.1', port, 20_000)
    const answers = await Promise.all(
      ports.map(async (port) => (await probe({ host: '127.0.0.1', port, sni: 'x', timeoutMs: 5000 })).answer),
    )
    expect(answers).toEqual(['up-up.1', 'up-up.2', 'up-up.3'])
    expect(await fm.stop(8000)).toBe(0)
    expect(fm.output()).toContain('sending SIGTERM to all processes')
  })
})
