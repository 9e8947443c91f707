import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { copyFile, cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { probe } from '../../egress/probe/probe.js'
import type { ReconcilerStatus } from '../../schemas/status.js'
import { type RunningProcess, repoRoot, startForeman, waitFor, waitForUrl } from '../helpers/procfile.js'
import { cli, demoAuth, requireBuild, tmpScratch } from './system.js'

/**
 * The project's Procfile through Debian's foreman with `-m all=1,egress=3`, in a scratch folder holding a copy
 * of the Procfile and .foreman, a copy of dist/ (node_modules linked) and a fresh .data/ (gitops repository seeded from
 * gitops-example/ with the git CLI, keys and tokens from scripts/demo-auth.sh, as `npm start` does: auth on). The Procfile's ports are fixed (nats 4222,
 * reconciler 9090, demo upstreams, egresses from .foreman's base 15000): the test checks them first and
 * fails with a clear message when one is taken. Everything runs in this one test, which stops foreman
 * (SIGTERM to its process group) whatever happens.
 */
const NATS = 'nats://127.0.0.1:4222'
const FIXED: [string, number][] = [
  ['127.0.0.1', 4222],
  ['127.0.0.1', 8222],
  ['127.0.0.1', 9090],
  ['127.0.0.1', 10001],
  ['127.0.0.1', 10011],
  ['127.0.0.1', 18080],
  ['127.0.0.2', 18080],
  ['127.0.0.3', 18081],
  ['127.0.0.1', 18443],
  ...[15200, 15201, 15202, 15250, 15251, 15252, 15300, 15350].map((p): [string, number] => ['127.0.0.1', p]),
]

let fm: RunningProcess | undefined
let scratch: string | undefined

afterAll(async () => {
  await fm?.stop(15_000)
  if (scratch) await rm(scratch, { recursive: true, force: true })
})

function bindable(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer()
    s.once('error', () => done(false))
    s.listen(port, host, () => s.close(() => done(true)))
  })
}

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
    cwd,
    encoding: 'utf8',
  }).trim()

async function status(): Promise<ReconcilerStatus> {
  return (await (
    await fetch('http://127.0.0.1:9090/status', { signal: AbortSignal.timeout(2000) })
  ).json()) as ReconcilerStatus
}

describe('e2e foreman', () => {
  it('e2e - foreman -m all=1,egress=3 runs the Procfile: three zone-a instances converge on a commit; httpbin is reached through each egress with mesh mTLS by an allowed caller, an unpermitted one is refused', async () => {
    requireBuild()
    const busy: string[] = []
    for (const [host, port] of FIXED) if (!(await bindable(host, port))) busy.push(`${host}:${port}`)
    if (busy.length > 0)
      throw new Error(
        `the Procfile's fixed ports are in use: ${busy.join(', ')} (stop \`npm start\` or whatever holds them)`,
      )

    scratch = await tmpScratch()
    await copyFile(resolve(repoRoot, 'Procfile'), join(scratch, 'Procfile'))
    await copyFile(resolve(repoRoot, '.foreman'), join(scratch, '.foreman'))
    await cp(resolve(repoRoot, 'scripts'), join(scratch, 'scripts'), { recursive: true })
    // a copy, not a link: dist/demo/upstream.js runs main() only when argv[1] is its real path
    await cp(resolve(repoRoot, 'dist'), join(scratch, 'dist'), { recursive: true })
    await symlink(resolve(repoRoot, 'node_modules'), join(scratch, 'node_modules'))
    const gitops = join(scratch, '.data/gitops')
    await mkdir(join(scratch, '.data/nats'), { recursive: true })
    await cp(resolve(repoRoot, 'gitops-example'), gitops, { recursive: true })
    git(gitops, 'init', '-q', '-b', 'main')
    git(gitops, 'add', '-A')
    git(gitops, 'commit', '-qm', 'seed')
    // keys and tokens as `npm start` makes them: nats-server runs with auth on, every process has a token
    await demoAuth(join(scratch, '.data/auth'), join(scratch, '.data/nats'))

    fm = startForeman({
      cwd: scratch,
      formation: 'all=1,egress=3',
      timeoutS: 10,
      env: { LOG_LEVEL: 'warn', CALL_EVERY: '2' },
    })
    const exited = fm.exited.then(() => {
      // the first process that ended took foreman down; nats-server's banner is left out
      const lines = (fm?.output() ?? '').split('\n').filter((l) => !/^\S+ nats\.1 /.test(l))
      throw new Error(`foreman exited early (a fixed port taken meanwhile?):\n${lines.join('\n').slice(-4000)}`)
    })
    const until = (what: string, check: () => Promise<boolean>, ms: number) =>
      Promise.race([waitFor(what, check, ms), exited])

    await Promise.race([waitForUrl('http://127.0.0.1:9090/readyz', 45_000), exited])
    const instances = ['ze-a/egress.1', 'ze-a/egress.2', 'ze-a/egress.3']
    // each replica applies the published table and reports it (late instances converge by themselves)
    await until(
      'three zone-a instances current',
      async () => {
        const z = (await status()).zones.find((x) => x.zone === 'zone-a')
        return instances.every((i) => z?.rollout?.current.includes(i))
      },
      45_000,
    )

    // a new cross-zone service (passthrough to zone-b's ingress): external services are mesh mTLS now
    const ingress = join(gitops, 'zones/zone-b/zone-ingresses/ingress-1.yaml')
    await writeFile(
      ingress,
      `${await readFile(ingress, 'utf8')}  - mesh: default\n    instances: 1\n    tags:\n      kuma.io/service: shipping\n      kuma.io/zone: zone-b\n`,
    )
    git(gitops, 'add', '-A')
    git(gitops, 'commit', '-qm', 'add shipping')
    const sha = git(gitops, 'rev-parse', 'HEAD')
    const [reconcile, watch] = await Promise.all([
      cli(['reconcile', '--nats', NATS, '--creds', join(scratch, '.data/auth/reconciler.creds')]),
      cli([
        'rollout',
        'watch',
        '--commit',
        sha,
        '--until',
        'converged',
        '--timeout',
        '20s',
        '--nats',
        NATS,
        '--creds',
        join(scratch, '.data/auth/viewer.creds'),
        '--output',
        'json',
      ]),
    ])
    expect(reconcile.code, reconcile.stderr).toBe(0)
    expect(watch.code, watch.stdout).toBe(0)
    const converged = watch.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string; zone?: string; instances?: string[] })
      .find((e) => e.type === 'rollout.converged' && e.zone === 'zone-a')
    expect([...(converged?.instances ?? [])].sort()).toEqual(instances)
    for (const port of [15200, 15201, 15202]) {
      const r = await probe({ host: '127.0.0.1', port, sni: 'shipping{mesh=default}', timeoutMs: 3000 })
      expect(r.answer, `egress on ${port}`).toBe('zi-b')
    }

    // External services through the egress with mesh mTLS (the demo's point): the Procfile's `caller` calls httpbin
    // as `web` (allowed by gitops-example/traffic-permissions/httpbin.yaml) and as `billing` (no permission)…
    await until(
      'the demo caller: web relayed, billing refused',
      async () =>
        /caller\.1 +\| caller: web → httpbin\{mesh=default\} via 127\.0\.0\.1:15200: mTLS ok, answered by httpbin-[12]/.test(
          fm?.output() ?? '',
        ) &&
        /caller\.1 +\| caller: billing → httpbin\{mesh=default\} via 127\.0\.0\.1:15200: REFUSED — closed after the TLS handshake without an answer /.test(
          fm?.output() ?? '',
        ),
      45_000,
    )
    // …and so do callers made here with `zonegate cert issue` (the builtin CA from NATS KV), on every replica
    const certs: Record<string, string> = {}
    for (const svc of ['web', 'billing']) {
      certs[svc] = join(scratch, `certs-${svc}`)
      const issued = await cli([
        'cert',
        'issue',
        '--mesh',
        'default',
        '--service',
        svc,
        '--out',
        certs[svc]!,
        '--nats',
        NATS,
        '--creds',
        join(scratch, '.data/auth/reconciler.creds'),
      ])
      expect(issued.code, issued.stderr).toBe(0)
    }
    const asSidecar = (svc: string, port: number) =>
      probe({
        host: '127.0.0.1',
        port,
        sni: 'httpbin{mesh=default}',
        timeoutMs: 5000,
        verify: true,
        cert: readFileSync(join(certs[svc]!, 'cert.pem'), 'utf8'),
        key: readFileSync(join(certs[svc]!, 'key.pem'), 'utf8'),
        ca: readFileSync(join(certs[svc]!, 'ca.pem'), 'utf8'),
      })
    for (const port of [15200, 15201, 15202]) {
      const allowed = await asSidecar('web', port)
      expect(allowed, `web via ${port}`).toMatchObject({ handshake: true, alpn: 'kuma', authorized: true })
      expect(allowed.peer?.san, `web via ${port}`).toContain('URI:spiffe://default/zone-egress')
      expect(allowed.answer, `web via ${port}`).toMatch(/^httpbin-[12]$/)
      const denied = await asSidecar('billing', port)
      expect(denied, `billing via ${port}`).toMatchObject({ handshake: false, outcome: 'closed' })
      expect(denied.answer, `billing via ${port}`).toBeUndefined()
      const prom = await (await fetch(`http://127.0.0.1:${port + 50}/stats/prometheus`)).text()
      expect(
        Number(/connections_rejected_total\{reason="permission-denied"\} (\d+)/.exec(prom)?.[1] ?? 0),
      ).toBeGreaterThan(0)
    }

    // foreman's own exit code follows nats-server's (1 on SIGTERM); the egresses drain and exit 0
    await fm.stop(15_000)
    const out = fm.output()
    fm = undefined
    expect(out).toContain('sending SIGTERM to all processes')
    for (const n of [1, 2, 3]) expect(out).toMatch(new RegExp(`egress\\.${n} +\\| exited with code 0`))
  }, 120_000)
})
