import { execFile, execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { probe } from '../../egress/probe/probe.js'
import { demoAuth, startAuthNats } from '../helpers/nats-auth.js'
import type { NatsServer } from '../helpers/nats-server.js'
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
  waitForUrl,
} from '../helpers/procfile.js'

/** The Procfile and test/helpers/procfile.ts: real processes (the built demo upstream), real foreman. */
const running: RunningProcess[] = []
const scratches: string[] = []
let nats: NatsServer | undefined

afterAll(async () => {
  await stopAll(running.splice(0), 3000)
  await nats?.stop()
  for (const d of scratches) await rm(d, { recursive: true, force: true })
})

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
    cwd,
    encoding: 'utf8',
  }).trim()

function watch(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((done) => {
    execFile(
      'node',
      [resolve(repoRoot, 'dist/cli/main.js'), 'rollout', 'watch', ...args],
      { timeout: 30_000 },
      (err, stdout) => {
        const code = err ? (err as { code?: number }).code : 0
        done({ code: typeof code === 'number' ? code : -1, stdout })
      },
    )
  })
}

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
    // secured like `npm start`: nats-server runs the auth configuration, every NATS client has its own token
    expect(byName.nats).toContain('-c .data/auth/nats-server.conf')
    expect(byName.nats).not.toContain('-js')
    expect(byName.reconciler).toContain('--creds .data/auth/reconciler.creds --signing-key .data/auth/table-signing.nk')
    expect(byName.egress).toContain('--creds .data/auth/zone-a-egress.creds')
    expect(byName.egress_b).toContain('--creds .data/auth/zone-b-egress.creds')
    for (const egress of ['egress', 'egress_b']) expect(byName[egress]).toContain('--trusted-key')
    // compiled code only (never tsx); a demo script may drive the built CLI; the egresses with glibc's mmap
    // threshold fixed (RSS stays flat over large tables: docs/operations.md)
    for (const e of entries)
      expect(e.command).toMatch(
        /^exec (node dist\/|env MALLOC_MMAP_THRESHOLD_=131072 node dist\/|nats-server |bash scripts\/[a-z-]+\.sh( |$))/,
      )
    for (const egress of ['egress', 'egress_b'])
      expect(byName[egress]).toMatch(/^exec env MALLOC_MMAP_THRESHOLD_=131072 node dist\/cli\/main\.js egress /)
    for (const e of entries.filter((x) => x.command.startsWith('exec bash '))) {
      const script = readFileSync(resolve(repoRoot, e.command.split(' ')[2]!), 'utf8')
      expect(script).toContain('node dist/cli/main.js')
      expect(script).not.toMatch(/\btsx\b/)
    }
    // the demo caller issues its certificates with the reconciler's token (cert issue reads the CA bucket)
    expect(byName.caller).toContain('--creds .data/auth/reconciler.creds')
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
    const scratch = await mkdtemp(join(tmpdir(), 'zonegate-foreman-'))
    scratches.push(scratch)
    const upstream = resolve(repoRoot, 'dist/demo/upstream.js')
    await writeFile(
      join(scratch, 'Procfile'),
      `other: exec sleep 30\nup: exec node ${upstream} --listen 127.0.0.1:$PORT --name up-$PS\n`,
    )
    // below Linux's ephemeral range (32768+), where other tests' random ports live
    const base = 20000 + Math.floor(Math.random() * 120) * 100
    const fm = startForeman({ cwd: scratch, formation: 'all=0,up=3', basePort: base, timeoutS: 5 })
    running.push(fm)
    const ports = [base + 100, base + 101, base + 102]
    // the output check fails fast (with foreman's log) when foreman exits, e.g. a port in use
    for (const n of [1, 2, 3]) await waitForOutput(fm, new RegExp(`up\\.${n} .*listening on`), 40_000)
    for (const port of ports) await waitForPort('127.0.0.1', port, 5000)
    const answers = await Promise.all(
      ports.map(async (port) => (await probe({ host: '127.0.0.1', port, sni: 'x', timeoutMs: 5000 })).answer),
    )
    expect(answers).toEqual(['up-up.1', 'up-up.2', 'up-up.3'])
    expect(await fm.stop(8000)).toBe(0)
    expect(fm.output()).toContain('sending SIGTERM to all processes')
  })

  it('procfile - the reconciler line on a scratch repo: an invalid commit ends the watch with exit 1 and file:line', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'zonegate-gitops-'))
    scratches.push(scratch)
    await cp(resolve(repoRoot, 'gitops-example'), scratch, { recursive: true })
    git(scratch, 'init', '-q', '-b', 'main')
    git(scratch, 'add', '-A')
    git(scratch, 'commit', '-qm', 'seed')
    const authNats = await startAuthNats()
    nats = authNats
    await demoAuth(authNats.authDir)
    const http = await freePort()
    const entry = readProcfile().find((e) => e.name === 'reconciler')!
    const rec = startProcess(entry, {
      replace: {
        '.data/gitops': scratch,
        '.data/auth': authNats.authDir,
        '127.0.0.1:9090': `127.0.0.1:${http}`,
        'nats://127.0.0.1:4222': nats.url,
      },
      args: ['--interval', '1s'],
      env: { LOG_LEVEL: 'warn' },
    })
    running.push(rec)
    await waitForUrl(`http://127.0.0.1:${http}/healthz`, 20_000)
    const file = join(scratch, 'zones/zone-a/zone-egresses/egress-1.yaml')
    await writeFile(
      file,
      'type: ZoneEgress\nname: ze-a\nzone: zone-a\nnetworking:\n  address: 127.0.0.1\n  port: 70000\n',
    )
    git(scratch, 'commit', '-qam', 'bad port')
    const r = await watch([
      '--commit',
      git(scratch, 'rev-parse', 'HEAD'),
      '--until',
      'converged',
      '--timeout',
      '20s',
      '--nats',
      nats.url,
      '--creds',
      join(authNats.authDir, 'viewer.creds'),
    ])
    expect(r.stdout).toMatch(/invalid {2}\d+ violation\(s\)/)
    expect(r.stdout).toMatch(
      /^ {17}zones\/zone-a\/zone-egresses\/egress-1\.yaml:6:\d+ ZoneEgress\/ze-a networking\.port: /m,
    )
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^invalid {2}commit /)
    expect(r.code).toBe(1)
    expect(await rec.stop()).toBe(0)
  })
})
