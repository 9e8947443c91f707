import { spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closedPort, tableOf, writeTable } from '../helpers/egress-fixtures.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'

/**
 * The exit-code scheme of every command (docs/design.md §5, README's command table): 0 ok, 1 invalid / failed /
 * not ready, 2 usage or I/O (bad flags, unreadable path, NATS unreachable, port in use), 3 differ — and the
 * message each common mistake gets. Table-driven, against the built CLI as a real child process; the NATS
 * cases use a real nats-server; the port cases a real listener holding the port.
 */
const root = resolve(import.meta.dirname, '../..')
const cli = join(root, 'dist/cli/main.js')
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version
let dir: string
let nats: NatsServer
let busy: net.Server
let busyPort: number
let deadNats: string
/** Peers that are not NATS: a TCP listener that accepts and says nothing, and an HTTP server. */
let silent: net.Server
let silentUrl: string
let web: http.Server
let webUrl: string

function zonegate(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [cli, ...args], {
      env: { ...process.env, NATS_URL: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d
    })
    child.stderr.on('data', (d: Buffer) => {
      err += d
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 40_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      res({ code, out, err })
    })
  })
}

beforeAll(async () => {
  // dist/ is built by vitest's global setup (test/helpers/global-build.ts)
  dir = mkdtempSync(join(tmpdir(), 'zonegate-exit-'))
  cpSync(join(root, 'gitops-example'), join(dir, 'good'), { recursive: true })
  cpSync(join(root, 'gitops-example'), join(dir, 'changed'), { recursive: true })
  const ingress = join(dir, 'changed/zones/zone-b/zone-ingresses/ingress-1.yaml')
  writeFileSync(ingress, readFileSync(ingress, 'utf8').replace(/instances: \d+/, 'instances: 9'))
  cpSync(join(root, 'gitops-example'), join(dir, 'bad'), { recursive: true })
  writeFileSync(join(dir, 'bad/meshes/broken.yaml'), 'type: Mesh\nname: broken\nmtls: 7\n')
  mkdirSync(join(dir, 'not-a-repo'))
  await writeTable(join(dir, 'table.json'), tableOf([{ sni: 'a', upstreams: [{ port: 1 }] }]))
  busy = net.createServer()
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r))
  busyPort = (busy.address() as AddressInfo).port
  deadNats = `nats://127.0.0.1:${await closedPort()}`
  silent = net.createServer(() => {})
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
  silentUrl = `nats://127.0.0.1:${(silent.address() as AddressInfo).port}`
  web = http.createServer((_q, res) => res.end('hello'))
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r))
  webUrl = `nats://127.0.0.1:${(web.address() as AddressInfo).port}`
  nats = await startNatsServer()
}, 120_000)

afterAll(async () => {
  await nats?.stop()
  await new Promise<void>((r) => (busy ? busy.close(() => r()) : r()))
  silent?.close()
  web?.closeAllConnections()
  web?.close()
  rmSync(dir, { recursive: true, force: true })
})

interface Case {
  name: string
  args: () => string[]
  env?: () => Record<string, string>
  code: number
  out?: RegExp
  err?: RegExp
  /** The command must end within this many ms: its --timeout plus process start-up on a busy shared machine (the old code hung until the 40 s kill). */
  withinMs?: number
}

/** Every command that talks to NATS, with a 1 s budget where it takes one. */
const NATS_COMMANDS: readonly string[][] = [
  ['reconcile', '--timeout', '1s'],
  ['status', '--timeout', '1s'],
  ['status', '--wait', '--timeout', '1s'],
  ['rollout', 'watch', '--timeout', '1s'],
  ['events', '--timeout', '1s'],
  ['cert', 'issue', '--mesh', 'default', '--service', 'web', '--out', '/nonexistent-cert-dir', '--timeout', '1s'],
  ['nats', 'migrate', '--timeout', '1s'],
]

const cases: Case[] = [
  { name: 'version flag', args: () => ['--version'], code: 0, out: new RegExp(`^${version}\\n$`) },
  { name: 'version command', args: () => ['version'], code: 0, out: new RegExp(`^zonegate ${version} \\(node v`) },
  {
    name: 'version as yaml',
    args: () => ['version', '-o', 'yaml'],
    code: 0,
    out: new RegExp(`^version: ${version}\\n`),
  },
  { name: 'unknown command', args: () => ['frobnicate'], code: 2, err: /unknown command 'frobnicate'/ },
  { name: 'unknown flag', args: () => ['validate', '.', '--colour'], code: 2, err: /unknown option '--colour'/ },
  { name: 'help has examples', args: () => ['diff', '--help'], code: 0, out: /Examples:\n.*zonegate diff/ },
  { name: 'validate valid', args: () => ['validate', join(dir, 'good')], code: 0, out: /: valid \(/ },
  { name: 'validate invalid', args: () => ['validate', join(dir, 'bad')], code: 1, out: /meshes\/broken\.yaml:3:7 / },
  { name: 'validate missing path', args: () => ['validate', join(dir, 'nope')], code: 2, err: /^zonegate: / },
  {
    name: 'validate output from the environment',
    args: () => ['validate', join(dir, 'good')],
    env: () => ({ ZONEGATE_OUTPUT: 'yaml' }),
    code: 0,
    out: /^valid: true\nviolations: \[\]\n/,
  },
  {
    name: 'compile zone without a table names the zones that have one',
    args: () => ['compile', join(dir, 'good'), '--zone', 'zone-x'],
    code: 2,
    err: /zone "zone-x" has no ZoneEgress .*zones with a ZoneEgress: zone-a, zone-b/,
  },
  {
    name: 'compile from env zone',
    args: () => ['compile', join(dir, 'good')],
    env: () => ({ ZONEGATE_ZONE: 'zone-b' }),
    code: 0,
    out: /^zone zone-b /,
  },
  { name: 'diff same', args: () => ['diff', join(dir, 'good'), join(dir, 'good')], code: 0, out: /0 zones changed/ },
  {
    name: 'diff differ is 3',
    args: () => ['diff', join(dir, 'good'), join(dir, 'changed')],
    code: 3,
    out: /zone-a: changed/,
  },
  {
    name: 'diff invalid side',
    args: () => ['diff', join(dir, 'good'), join(dir, 'bad')],
    code: 1,
    err: /^to: meshes\/broken/m,
  },
  {
    name: 'diff --repo that is not a repository',
    args: () => ['diff', 'main', 'HEAD', '--repo', join(dir, 'not-a-repo')],
    code: 2,
    err: /not-a-repo is not a Git repository .*git init/,
  },
  {
    name: 'bad duration',
    args: () => ['reconcile', '--timeout', '1x'],
    code: 2,
    err: /--timeout: expected a duration like .*1m30s/,
  },
  {
    name: 'wait and watch exclude each other',
    args: () => ['status', '--wait', '--watch'],
    code: 2,
    err: /exclude each other/,
  },
  {
    name: 'reconciler --repo that is not a repository',
    args: () => ['reconciler', '--repo', join(dir, 'not-a-repo')],
    code: 2,
    err: /is not a Git repository/,
  },
  {
    name: 'reconciler admin port in use: one line, exit 2',
    args: () => ['reconciler', '--repo', root, '--http', `127.0.0.1:${busyPort}`, '--nats', deadNats],
    code: 2,
    err: /^zonegate: --http 127\.0\.0\.1:\d+: the address is already in use .*\n$/,
  },
  {
    name: 'egress listener port in use: one line, exit 2',
    args: () => ['egress', '--static', join(dir, 'table.json'), '--name', 'ze-a', '--listen', `127.0.0.1:${busyPort}`],
    env: () => ({ LOG_LEVEL: 'silent' }),
    code: 2,
    err: /^zonegate: cannot listen on 127\.0\.0\.1:\d+: it is already in use .*\n$/,
  },
  {
    name: 'egress without zone in NATS mode',
    args: () => ['egress'],
    code: 2,
    err: /NATS mode needs --zone and --name/,
  },
  { name: 'bad log format', args: () => ['version'], env: () => ({ LOG_FORMAT: 'xml' }), code: 2, err: /LOG_FORMAT/ },
  ...(['reconcile', 'status', 'events', 'rollout watch'] as const).map(
    (command): Case => ({
      name: `${command}: NATS down says which URL and how to start it (2)`,
      args: () => [...command.split(' '), '--nats', deadNats],
      code: 2,
      err: /cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+.*nats-server -js/,
    }),
  ),
  ...NATS_COMMANDS.flatMap((args): Case[] => [
    {
      name: `${args.slice(0, 2).join(' ')}: a peer that accepts and says nothing is not NATS (2, within --timeout)`,
      args: () => [...args, '--nats', silentUrl],
      code: 2,
      err: /cannot connect to NATS at .*not a NATS server: it accepted the connection but sent nothing within 1s/,
      withinMs: 20_000,
    },
    {
      name: `${args.slice(0, 2).join(' ')}: an HTTP server is not NATS (2, within --timeout)`,
      args: () => [...args, '--nats', webUrl],
      code: 2,
      err: /not a NATS server/,
      withinMs: 20_000,
    },
  ]),
  {
    name: 'nats migrate with NATS down (2)',
    args: () => ['nats', 'migrate', '--nats', deadNats],
    code: 2,
    err: /cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+ \(connection refused\)/,
  },
  {
    name: 'reconciler --repo that does not exist (2 at start)',
    args: () => ['reconciler', '--repo', join(dir, 'no-such-dir'), '--nats', deadNats],
    code: 2,
    err: /no-such-dir: no such directory/,
    withinMs: 20_000,
  },
  {
    name: 'reconciler --lease-renew over half the TTL (2)',
    args: () => ['reconciler', '--repo', root, '--lease-ttl', '2s', '--lease-renew', '1500ms', '--nats', deadNats],
    code: 2,
    err: /--lease-renew: must be between 50ms and half the lease TTL \(1000 ms\)/,
  },
  {
    name: 'reconciler lease timing from the environment (ZONEGATE_LEASE_RENEW)',
    args: () => ['reconciler', '--repo', root, '--nats', deadNats],
    env: () => ({ ZONEGATE_LEASE_TTL: '2s', ZONEGATE_LEASE_RENEW: '5s' }),
    code: 2,
    err: /--lease-renew: must be between 50ms and half the lease TTL \(1000 ms\), got "5s"/,
  },
  {
    name: 'NATS_URL from the environment is used',
    args: () => ['status'],
    env: () => ({ NATS_URL: deadNats }),
    code: 2,
    err: /cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+/,
  },
  {
    name: 'reconcile with nobody answering (1)',
    args: () => ['reconcile', '--nats', nats.url],
    code: 1,
    err: /no reconciler is answering/,
  },
  {
    name: 'status with no reconciler is not ready (1)',
    args: () => ['status', '--nats', nats.url],
    code: 1,
    err: /not ready: no reconciler/,
  },
  {
    name: 'status --wait gives up at the timeout (1)',
    args: () => ['status', '--wait', '--timeout', '1s', '--nats', nats.url],
    code: 1,
    err: /waiting for Ready: no reconciler[\s\S]*not ready/,
  },
  {
    name: 'events without a stream (1)',
    args: () => ['events', '--nats', nats.url],
    code: 1,
    err: /stream ZONEGATE_EVENTS not found/,
  },
  {
    name: 'probe of a closed port (1)',
    args: () => ['probe', '--sni', 'a', deadNats.replace('nats://', ''), '--timeout', '2s'],
    code: 1,
  },
  {
    name: 'completion bash',
    args: () => ['completion', 'bash'],
    code: 0,
    out: /complete -o default -F _zonegate zonegate/,
  },
  { name: 'completion of an unknown shell', args: () => ['completion', 'tcsh'], code: 2, err: /tcsh/ },
]

describe('cli exit codes', () => {
  it.each(cases)('cli exit codes - $name → $code', async (c) => {
    const t0 = Date.now()
    const r = await zonegate(c.args(), c.env?.() ?? {})
    if (c.withinMs !== undefined) expect(Date.now() - t0, r.err).toBeLessThan(c.withinMs)
    expect({ code: r.code, err: r.err }).toMatchObject({ code: c.code })
    if (c.out) expect(r.out).toMatch(c.out)
    if (c.err) expect(r.err).toMatch(c.err)
  })
})
