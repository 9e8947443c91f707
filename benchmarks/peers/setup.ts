/**
 * Setup for the proxy-throughput benchmark: options from the environment, the tool check, the run's temp directory
 * (certificates, bodies, configs, logs, the compiled C client) and the processes (backend nginx, HAProxy, nginx
 * stream, node-ref, the zonegate egress), each in its own process group, pinned when `pin` is `split`.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  backendConf,
  benchRoutes,
  haproxyCfg,
  nginxStreamConf,
  type Ports,
  portsFrom,
  routesJson,
  zoneTable,
} from './configs.js'
import { clientHello } from './hello.js'
import type { GuardOptions } from './measure.js'
import { pinned, portOpen, type Server, startServer } from './procs.js'

export const here = dirname(fileURLToPath(import.meta.url))
export const repoRoot = join(here, '..', '..')

export const TARGETS = [
  'direct',
  'haproxy',
  'nginx-stream',
  'node-ref',
  'node-raw',
  'egress',
  'haproxy-2',
  'nginx-stream-2',
  'egress-2',
] as const
export type TargetName = (typeof TARGETS)[number]

/**
 * Threads (HAProxy `nbthread`), worker processes (nginx) or egress `--workers` of a target. Targets with 1 run alone
 * on CPU 1 under `--pin split` (the per-core figures); targets with 2 are not pinned: they use the whole machine
 * (shared with the load generator and backend on CPU 0), for the whole-machine figures.
 */
export function threadsOf(t: TargetName): number {
  return t.endsWith('-2') ? 2 : 1
}

export interface Options {
  smoke: boolean
  duration: number
  reps: number
  warmup: number
  pin: 'split' | 'none'
  targets: TargetName[]
  /** Workloads to run (BENCH_WORKLOADS, default all). */
  workloads: string[]
  maxOtherPct: number
  /** Re-run a measurement during which the hypervisor stole more than this % of the machine (BENCH_MAX_STEAL_PCT). */
  maxStealPct: number
  retries: number
  quietWaitMs: number
  quietBudgetMs: number
  portBase: number
  conns: { conn: number; ka: number; bulk: number }
  egressCmd: string | undefined
  /** Directory for `node --cpu-prof` of the egress (BENCH_EGRESS_PROF=DIR), written when it exits. */
  egressProfDir: string | undefined
}

/** Options from BENCH_* variables; smoke: 1 s, 1 rep, no warm-up, no interference guard. */
export function readOptions(smoke: boolean, env = process.env): Options {
  const num = (k: string, d: number) => (env[k] !== undefined && env[k] !== '' ? Number(env[k]) : d)
  const pin = (env.BENCH_PIN ?? (cpus().length >= 2 ? 'split' : 'none')) as Options['pin']
  if (pin !== 'split' && pin !== 'none') throw new Error(`BENCH_PIN must be split or none, got ${pin}`)
  const targets = (env.BENCH_TARGETS ? env.BENCH_TARGETS.split(',') : [...TARGETS]) as TargetName[]
  const bad = targets.filter((t) => !TARGETS.includes(t))
  if (bad.length > 0) throw new Error(`BENCH_TARGETS: unknown ${bad.join(', ')}; have ${TARGETS.join(', ')}`)
  return {
    smoke,
    duration: num('BENCH_DURATION', smoke ? 1 : 5),
    reps: num('BENCH_REPS', smoke ? 1 : 3),
    warmup: num('BENCH_WARMUP', smoke ? 0 : 2),
    pin,
    targets,
    workloads: env.BENCH_WORKLOADS ? env.BENCH_WORKLOADS.split(',') : ['conn', 'connraw', 'ka', 'bulk'],
    maxOtherPct: num('BENCH_MAX_OTHER_PCT', 10),
    maxStealPct: num('BENCH_MAX_STEAL_PCT', 5),
    retries: num('BENCH_RETRIES', smoke ? 0 : 2),
    quietWaitMs: num('BENCH_QUIET_WAIT', smoke ? 0 : 60) * 1000,
    quietBudgetMs: num('BENCH_QUIET_BUDGET', smoke ? 0 : 300) * 1000,
    portBase: num('BENCH_PORT_BASE', 28440),
    conns: { conn: num('BENCH_CONN_C', 16), ka: num('BENCH_KA_C', 32), bulk: num('BENCH_BULK_C', 4) },
    egressCmd: env.BENCH_EGRESS_CMD,
    egressProfDir: env.BENCH_EGRESS_PROF,
  }
}

/** The interference guard from the options: a fresh quiet budget, shared by every measurement of one run. */
export function guardOf(opts: Options, ncpu: number): GuardOptions {
  return {
    maxOtherPct: opts.maxOtherPct,
    maxStealPct: opts.maxStealPct,
    retries: opts.retries,
    quietWaitMs: opts.quietWaitMs,
    quietBudget: { remainingMs: opts.quietBudgetMs },
    ncpu,
  }
}

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd} || test -x /usr/sbin/${cmd}`], { stdio: 'ignore' }).status === 0
}

export interface Tools {
  haproxy: boolean
  nginx: boolean
  wrk: boolean
  gcc: boolean
  openssl: boolean
  taskset: boolean
  egress: boolean
  versions: Record<string, string>
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0]!.trim()
}

/** Which tools are present (the setup check), with their version lines. */
export function checkTools(): Tools {
  const nginx = which('nginx') && existsSync('/usr/lib/nginx/modules/ngx_stream_module.so')
  const egressMain = join(repoRoot, 'dist', 'cli', 'main.js')
  const egress =
    existsSync(egressMain) &&
    spawnSync(process.execPath, [egressMain, 'egress', '--help'], { stdio: 'ignore', timeout: 10_000 }).status === 0
  const versions: Record<string, string> = { node: process.version }
  if (which('haproxy')) versions.haproxy = firstLine('haproxy', ['-v'])
  if (nginx) versions.nginx = firstLine('nginx', ['-v'])
  if (which('wrk')) versions.wrk = firstLine('wrk', ['--version'])
  if (which('openssl')) versions.openssl = firstLine('openssl', ['version'])
  return {
    haproxy: which('haproxy'),
    nginx,
    wrk: which('wrk'),
    gcc: which('gcc'),
    openssl: which('openssl'),
    taskset: which('taskset'),
    egress,
    versions,
  }
}

export interface Workspace {
  dir: string
  ports: Ports
  tlsconn: string | undefined
  helloFile: string
  luaFile: string
  tableFile: string
  routesFile: string
}

async function freeBase(preferred: number): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const base = i === 0 ? preferred : 20000 + Math.floor(Math.random() * 400) * 20
    const p = portsFrom(base)
    const busy = await Promise.all(Object.values(p).map((port) => portOpen(port)))
    if (!busy.some(Boolean)) return base
  }
  throw new Error('no free port block found')
}

/** Creates the temp directory with certificates, bodies, configs and the compiled C client (when gcc works). */
export async function prepareWorkspace(opts: Options, tools: Tools): Promise<Workspace> {
  const dir = mkdtempSync(join(tmpdir(), 'zg-bench-'))
  for (const d of ['certs', 'www', 'tmp', 'logs']) mkdirSync(join(dir, d))
  const ports = portsFrom(await freeBase(opts.portBase))
  const asRoot = process.getuid?.() === 0
  for (const name of ['a.test', 'b.test', 'c.test']) {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        `/CN=${name}`,
        '-addext',
        `subjectAltName=DNS:${name}`,
        '-keyout',
        join(dir, 'certs', `${name}.key`),
        '-out',
        join(dir, 'certs', `${name}.crt`),
      ],
      { stdio: 'ignore' },
    )
  }
  writeFileSync(join(dir, 'www', 'small'), Buffer.alloc(1024, 0x61))
  writeFileSync(join(dir, 'www', 'large'), Buffer.alloc(10 * 1024 * 1024, 0x62))
  const routes = benchRoutes(ports)
  writeFileSync(join(dir, 'backend.conf'), backendConf(dir, ports, asRoot))
  writeFileSync(join(dir, 'haproxy.cfg'), haproxyCfg(dir, routes, ports.haproxy))
  writeFileSync(join(dir, 'nginx-stream.conf'), nginxStreamConf(dir, routes, ports.nginxStream, asRoot))
  writeFileSync(join(dir, 'haproxy-2.cfg'), haproxyCfg(dir, routes, ports.haproxy2, 2, 'haproxy-2'))
  writeFileSync(
    join(dir, 'nginx-stream-2.conf'),
    nginxStreamConf(dir, routes, ports.nginxStream2, asRoot, 2, 'nginx-stream-2'),
  )
  writeFileSync(join(dir, 'routes.json'), routesJson(routes))
  writeFileSync(join(dir, 'table.json'), `${JSON.stringify(zoneTable(routes, ports), null, 2)}\n`)
  writeFileSync(join(dir, 'hello-raw.bin'), clientHello('raw.test'))
  let tlsconn: string | undefined
  if (tools.gcc) {
    const out = join(dir, 'tlsconn')
    const r = spawnSync('gcc', ['-O2', '-pthread', '-o', out, join(here, 'tlsconn.c'), '-lssl', '-lcrypto'], {
      encoding: 'utf8',
    })
    if (r.status === 0) tlsconn = out
    else if (!opts.smoke) throw new Error(`compiling tlsconn.c failed (needs gcc and libssl-dev):\n${r.stderr}`)
  }
  return {
    dir,
    ports,
    tlsconn,
    helloFile: join(dir, 'hello-raw.bin'),
    luaFile: join(here, 'sni.lua'),
    tableFile: join(dir, 'table.json'),
    routesFile: join(dir, 'routes.json'),
  }
}

/** Where each target listens; direct goes straight to the backend (a.test → A, raw → the stream server). */
export function targetPort(t: TargetName, p: Ports): number {
  return {
    direct: p.backendA,
    haproxy: p.haproxy,
    'nginx-stream': p.nginxStream,
    'node-ref': p.nodeRef,
    'node-raw': p.nodeRaw,
    egress: p.egress,
    'haproxy-2': p.haproxy2,
    'nginx-stream-2': p.nginxStream2,
    'egress-2': p.egress2,
  }[t]
}

/** Starts the backend nginx (on the load generator's CPU when split). */
export function startBackend(ws: Workspace, opts: Options): Promise<Server> {
  const argv = [
    'nginx',
    '-p',
    ws.dir,
    '-e',
    join(ws.dir, 'logs', 'backend-error.log'),
    '-c',
    join(ws.dir, 'backend.conf'),
  ]
  return startServer('backend', pinned(opts.pin === 'split' ? 0 : undefined, argv), {
    logDir: join(ws.dir, 'logs'),
    port: ws.ports.backendA,
  })
}

/** Starts one proxy target (alone on CPU 1 when split, unless it has 2 threads); direct starts nothing. */
export async function startTarget(t: TargetName, ws: Workspace, opts: Options): Promise<Server | undefined> {
  const cpu = opts.pin === 'split' && threadsOf(t) === 1 ? 1 : undefined
  const logDir = join(ws.dir, 'logs')
  const port = targetPort(t, ws.ports)
  const p = ws.ports
  switch (t) {
    case 'direct':
      return undefined
    case 'haproxy':
    case 'haproxy-2':
      return startServer(t, pinned(cpu, ['haproxy', '-db', '-f', join(ws.dir, `${t}.cfg`)]), { logDir, port })
    case 'nginx-stream':
    case 'nginx-stream-2': {
      const argv = ['nginx', '-p', ws.dir, '-e', join(logDir, `${t}-error.log`), '-c', join(ws.dir, `${t}.conf`)]
      return startServer(t, pinned(cpu, argv), { logDir, port })
    }
    case 'node-ref':
    case 'node-raw':
      return startServer(
        t,
        pinned(cpu, [process.execPath, join(here, `${t}.js`), ws.routesFile, `127.0.0.1:${port}`]),
        { logDir, port },
      )
    case 'egress':
    case 'egress-2': {
      const prof = opts.egressProfDir ? ` --cpu-prof --cpu-prof-dir=${opts.egressProfDir}` : ''
      const nodeArgs = process.env.BENCH_EGRESS_NODE_ARGS ? ` ${process.env.BENCH_EGRESS_NODE_ARGS}` : ''
      const cmd =
        opts.egressCmd ??
        `exec ${process.execPath}${prof}${nodeArgs} dist/cli/main.js egress --static {table} --listen 127.0.0.1:{port} --admin 127.0.0.1:{admin} --grace 2s --workers {workers}`
      const line = cmd
        .replaceAll('{table}', ws.tableFile)
        .replaceAll('{port}', String(port))
        .replaceAll('{admin}', String(t === 'egress' ? p.egressAdmin : p.egress2Admin))
        .replaceAll('{workers}', String(threadsOf(t)))
      const env = { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', NODE_ENV: 'production' }
      return startServer(t, pinned(cpu, ['bash', '-c', line]), { logDir, port, env, cwd: repoRoot })
    }
  }
}
