import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import tls from 'node:tls'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { natsConnectOptions } from '../../lib/nats-connect.js'
import type { ReconcilerStatus, ZoneStatus } from '../../schemas/status.js'
import { RECONCILE_SUBJECT } from '../../schemas/subjects.js'
import { CLI_PATH, type CliResult, runCli } from '../helpers/cli.js'
import { createGitRepo, type GitRepo, readFolderFiles } from '../helpers/git-repo.js'
import { demoAuth, startAuthNats } from '../helpers/nats-auth.js'
import type { NatsCluster } from '../helpers/nats-cluster.js'
import type { NatsServer } from '../helpers/nats-server.js'
import {
  freePort,
  type ProcfileEntry,
  type RunningProcess,
  readProcfile,
  repoRoot,
  startProcess,
  waitFor,
  waitForOutput,
  waitForUrl,
} from '../helpers/procfile.js'

/**
 * The whole system from the built CLI for end-to-end tests: a real nats-server, `zonegate reconciler` on a
 * scratch isomorphic-git repository seeded from gitops-example/ (its upstream ports rewritten to random ones),
 * `zonegate egress` processes in NATS mode and TLS demo upstreams (`dist/demo/upstream.js`), all started
 * from the Procfile's own command lines with addresses and paths replaced. Random ports everywhere. Secured as
 * `npm start` is: nats-server runs the configuration `zonegate auth init` writes (auth on), the keys and tokens
 * come from scripts/demo-auth.sh, every process connects with its own token and tables are signed.
 */

export const CLI = CLI_PATH

export interface Egress {
  proc: RunningProcess
  zone: string
  instance: string
  port: number
  admin: string
}

export interface System {
  nats: NatsServer
  /** The demo's auth folder (scripts/demo-auth.sh): keys, nats-server.conf, tokens. */
  authDir: string
  /** Tokens for CLI calls: `['--creds', sys.creds.viewer]`. */
  creds: { reconciler: string; viewer: string }
  nc: NatsConnection
  repo: GitRepo
  http: string
  stateDir: string
  reconciler: RunningProcess
  upstreams: Map<string, { port: number; proc: RunningProcess }>
  egresses: Egress[]
  /** Starts an egress of `zone` (instance id given) on random ports; does not wait. */
  startEgress(zone: 'zone-a' | 'zone-b', instance: string): Promise<Egress>
  /** Commits changes (path → text, null deletes) and asks the reconciler to run now over NATS. */
  commit(changes: Record<string, string | null>, message: string): Promise<string>
  /** Asks the active reconciler to run now (`zonegate.cmd.reconcile`); errors are ignored. */
  kick(): Promise<void>
  status(): Promise<ReconcilerStatus>
  zone(name: string): Promise<ZoneStatus | undefined>
  stop(): Promise<void>
}

/** Runs the built CLI (test/helpers/cli.ts); resolves with exit code, stdout and stderr (never rejects). */
export const cli = (args: string[], timeoutMs = 30_000): Promise<CliResult> => runCli(args, { timeoutMs })

/** Fails with a clear message when dist/ is missing (the e2e suite runs the built CLI). */
export function requireBuild(): void {
  if (!existsSync(CLI) || !existsSync(resolve(repoRoot, 'dist/demo/upstream.js')))
    throw new Error('dist/ is missing: run `npm run build` before the e2e tests')
}

const entry = (name: string): ProcfileEntry => {
  const e = readProcfile().find((p) => p.name === name)
  if (!e) throw new Error(`Procfile has no ${name}`)
  return e
}

/** The demo upstreams of the Procfile the zone-a/zone-b tables route to, with their fixed listen address. */
const UPSTREAMS: { name: string; listen: string }[] = [
  { name: 'ingress_a', listen: '127.0.0.1:10001' },
  { name: 'ingress_b', listen: '127.0.0.1:10011' },
  { name: 'secure_api', listen: '127.0.0.1:18443' },
]

export interface SystemOptions {
  /**
   * Run on this NATS cluster (test/helpers/nats-cluster.ts; every process gets all its URLs) instead of starting
   * one nats-server. The caller owns the cluster: `stop()` leaves it running, and `sys.nats` then stands for the
   * whole cluster (`url` is the comma-separated URL list; `kill`/`restart` act on every node).
   */
  cluster?: NatsCluster
  egresses?: { zone: 'zone-a' | 'zone-b'; instance: string }[]
  egressArgs?: string[]
  /** The reconciler's poll interval (default 1s). */
  interval?: string
  reconcilerArgs?: string[]
}

/**
 * Log level of the reconciler and the egresses: `warn`, or `ZONEGATE_E2E_LOG_LEVEL` (e.g. `info` while chasing
 * a fault, with `ZONEGATE_TEST_LOG_DIR` to keep every process's whole output: test/helpers/procfile.ts).
 */
const E2E_LOG_LEVEL = process.env.ZONEGATE_E2E_LOG_LEVEL || 'warn'

/** Starts the system; waits until the reconciler and every egress of `opts.egresses` are ready. */
export async function startSystem(opts: SystemOptions = {}): Promise<System> {
  requireBuild()
  const procs: RunningProcess[] = []
  // a cluster the caller owns runs without auth (test/helpers/nats-cluster.ts); the tokens still work on it
  const authNats = opts.cluster ? undefined : await startAuthNats()
  const nats: NatsServer = opts.cluster ? clusterAsServer(opts.cluster) : authNats!
  const authDir = authNats?.authDir ?? (await mkdtemp(join(tmpdir(), 'zonegate-e2e-auth-')))
  await demoAuth(authDir)
  const creds = { reconciler: join(authDir, 'reconciler.creds'), viewer: join(authDir, 'viewer.creds') }
  const natsArg = opts.cluster ? opts.cluster.urls.join(',') : nats.url
  const stateDir = await mkdtemp(join(tmpdir(), 'zonegate-e2e-state-'))
  const upstreams = new Map<string, { port: number; proc: RunningProcess }>()
  const replacePorts: Record<string, string> = {}
  for (const u of UPSTREAMS) {
    const port = await freePort()
    const proc = startProcess(entry(u.name), { replace: { [u.listen]: `127.0.0.1:${port}` } })
    procs.push(proc)
    upstreams.set(u.name, { port, proc })
    replacePorts[u.listen] = `127.0.0.1:${port}`
  }
  // gitops-example with the upstream addresses rewritten: advertisedPort / address lines
  const files = await readFolderFiles(resolve(repoRoot, 'gitops-example'))
  const ingressA = upstreams.get('ingress_a')!.port
  const ingressB = upstreams.get('ingress_b')!.port
  const secure = upstreams.get('secure_api')!.port
  for (const [path, text] of Object.entries(files)) {
    files[path] = text
      .replace(/advertisedPort: 10001/, `advertisedPort: ${ingressA}`)
      .replace(/advertisedPort: 10011/, `advertisedPort: ${ingressB}`)
      .replace(/127\.0\.0\.1:18443/, `127.0.0.1:${secure}`)
  }
  const repo = await createGitRepo({ files })
  const httpPort = await freePort()
  const reconciler = startProcess(entry('reconciler'), {
    replace: {
      '.data/gitops': repo.dir,
      '.data/auth': authDir,
      '127.0.0.1:9090': `127.0.0.1:${httpPort}`,
      'nats://127.0.0.1:4222': natsArg,
      '--interval 5s': `--interval ${opts.interval ?? '1s'}`,
    },
    args: ['--rollout-timeout', '10s', ...(opts.reconcilerArgs ?? [])],
    env: { LOG_LEVEL: E2E_LOG_LEVEL },
  })
  procs.push(reconciler)
  const http = `http://127.0.0.1:${httpPort}`
  const nc = await connect({
    ...(await natsConnectOptions({ creds: creds.reconciler })),
    servers: natsArg.split(','),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  })
  const egresses: Egress[] = []

  const startEgress = async (zone: 'zone-a' | 'zone-b', instance: string): Promise<Egress> => {
    const port = await freePort()
    const adminPort = await freePort()
    const proc = startProcess(entry(zone === 'zone-a' ? 'egress' : 'egress_b'), {
      port,
      replace: {
        '127.0.0.1:$((PORT + 50))': `127.0.0.1:${adminPort}`,
        [`.data/egress/${zone}`]: join(stateDir, zone),
        '.data/auth': authDir,
        'nats://127.0.0.1:4222': natsArg,
      },
      args: ['--instance', instance, '--heartbeat', '1s', ...(opts.egressArgs ?? [])],
      env: { LOG_LEVEL: E2E_LOG_LEVEL },
    })
    procs.push(proc)
    const e = { proc, zone, instance, port, admin: `http://127.0.0.1:${adminPort}` }
    egresses.push(e)
    return e
  }

  const sys: System = {
    nats,
    authDir,
    creds,
    nc,
    repo,
    http,
    stateDir,
    reconciler,
    upstreams,
    egresses,
    startEgress,
    async kick() {
      await nc.request(RECONCILE_SUBJECT, '', { timeout: 3000 }).catch(() => {})
    },
    async commit(changes, message) {
      const sha = await repo.commit(changes, message)
      void sys.kick()
      return sha
    },
    async status() {
      return (await (await fetch(`${http}/status`, { signal: AbortSignal.timeout(2000) })).json()) as ReconcilerStatus
    },
    async zone(name) {
      return (await sys.status()).zones.find((z) => z.zone === name)
    },
    async stop() {
      await nc.close().catch(() => {})
      await Promise.all([...procs].reverse().map((p) => p.stop(3000)))
      await nats.stop()
      await rm(authDir, { recursive: true, force: true })
      await repo.remove()
      await rm(stateDir, { recursive: true, force: true })
    },
  }
  try {
    for (const u of upstreams.values()) await waitForOutput(u.proc, /listening on/, 20_000)
    await waitForUrl(`${http}/readyz`, 20_000)
    for (const e of opts.egresses ?? []) await startEgress(e.zone, e.instance)
    for (const e of egresses) await waitForReady(e)
  } catch (err) {
    const logs = procs.map((p) => `--- ${p.ps}: ${p.command}\n${p.output().slice(-2000)}`).join('\n')
    await sys.stop()
    throw new Error(`${(err as Error).message}\n${logs}`)
  }
  return sys
}

/** `System.nats` for a cluster the caller owns: the URL list, and whole-cluster kill/restart; stop is a no-op. */
function clusterAsServer(c: NatsCluster): NatsServer {
  return {
    url: c.urls.join(','),
    port: c.nodes[0]!.port,
    storeDir: c.nodes[0]!.storeDir,
    kill: () => c.killAll(),
    restart: () => c.restartAll(),
    reload: async () => {
      throw new Error('reload is not supported on a cluster here')
    },
    stop: async () => {},
  }
}

/** Waits until the egress's admin /ready answers 200 (fails fast with its output if it exits). */
export async function waitForReady(e: Egress, timeoutMs = 20_000): Promise<void> {
  let exited = false
  void e.proc.exited.then(() => {
    exited = true
  })
  await waitFor(
    `${e.zone}/${e.instance} ready`,
    async () => {
      if (exited) throw new Error(`egress ${e.instance} exited:\n${e.proc.output().slice(-3000)}`)
      return (await fetch(`${e.admin}/ready`, { signal: AbortSignal.timeout(1000) })).ok
    },
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${e.proc.output().slice(-3000)}`)
  })
}

/** The egress's /config_dump. */
export async function configDump(e: Egress): Promise<{ state: string; generation: number | null; digest: string }> {
  return (await (await fetch(`${e.admin}/config_dump`, { signal: AbortSignal.timeout(2000) })).json()) as {
    state: string
    generation: number | null
    digest: string
  }
}

export interface OpenConnection {
  /** Resolves when the connection closes, with ms since `open` resolved. */
  closed: Promise<number>
  socket: tls.TLSSocket
}

/** Opens a TLS connection through an egress with `sni` and keeps it open (rejects when the handshake fails). */
export function openTls(port: number, sni: string): Promise<OpenConnection> {
  return new Promise((resolveOpen, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: sni, rejectUnauthorized: false })
    s.once('error', reject)
    s.once('secureConnect', () => {
      const t0 = Date.now()
      s.on('error', () => {})
      resolveOpen({ socket: s, closed: new Promise((r) => s.once('close', () => r(Date.now() - t0))) })
    })
  })
}

/** `zonegate probe --sni S 127.0.0.1:PORT --output json` through the built CLI. */
export async function probeCli(
  port: number,
  sni: string,
): Promise<{ handshake: boolean; answer?: string; detail: string }> {
  const r = await cli(['probe', '--sni', sni, `127.0.0.1:${port}`, '--output', 'json', '--timeout', '3s'])
  return JSON.parse(r.stdout) as { handshake: boolean; answer?: string; detail: string }
}

export const tmpScratch = () => mkdtemp(join(tmpdir(), 'zonegate-e2e-'))

export { demoAuth }
