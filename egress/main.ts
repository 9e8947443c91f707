import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { type Actor, createActor, fromPromise, type SnapshotFrom } from 'xstate'
import { type LogFormat, packageVersion } from '../lib/common.js'
import { createLogger } from '../lib/logging.js'
import type { NatsAuthOptions } from '../lib/nats-connect.js'
import { certSubject } from '../schemas/subjects.js'
import type { ZoneTable } from '../schemas/table.js'
import { READY_STATES, startAdminServer } from './admin/http.js'
import { createEgressMetrics, type EgressMetrics } from './admin/metrics.js'
import { admittedValue, fileProblem } from './core/admission.js'
import { releaseTable } from './core/compact-table.js'
import { meshCasOf, RoutingTable } from './core/routing-table.js'
import { EgressIdentity } from './identity/egress-identity.js'
import { egressMachine, type StartOutput } from './lifecycle/egress.machine.js'
import type { TableRejected, TableSwapped } from './lifecycle/egress-context.js'
import { findEgressEntry, type HostPort, resolveListen } from './lifecycle/listener.js'
import { leanBindings } from './proxy/lean.js'
import { DEFAULT_GRACE_MS } from './proxy/proxy-options.js'
import { DEFAULT_PROXY_OPTIONS, type ProxyOptions, TcpProxy } from './proxy/tcp-proxy.js'
import type { NatsSubscriber } from './transport/nats-subscriber.js'
import { startTableAdmitter, type TableAdmitter } from './transport/table-admitter.js'
import { WorkerPool } from './workers/pool.js'
import { perWorkerCap, snapshotOf } from './workers/protocol.js'

/**
 * Wiring of one egress process: the lifecycle machine with real effects (read the `--static` file, or the
 * NATS subscriber and the `--state-dir` file; listen, swap, drain), the proxy, the admin server and signals.
 * This is the only egress file that creates a logger. The NATS client is imported only in NATS mode.
 */

export { type HostPort, resolveListen } from './lifecycle/listener.js'

/** NATS mode: the zone's table comes from KV `zonegate-tables` (`zone` and `name` are required). */
export interface NatsModeOptions {
  servers: string[]
  /** Credentials, TLS and inbox prefix (lib/nats-connect.ts `natsConnectOptions`). */
  auth?: NatsAuthOptions
  /** Where the last good table is kept (`<dir>/<zone>.table.json`), to serve while NATS is down. */
  stateDir?: string
  /** Heartbeat period (default 10 s; tests shorten it). */
  heartbeatMs?: number
  /** Period of the table watch's liveness check (default 5 s; tests shorten it). */
  watchCheckMs?: number
}

export interface EgressOptions {
  /** The table file (`--static`); exactly one of `staticFile` and `nats`. */
  staticFile?: string
  nats?: NatsModeOptions
  /** `--listen`; else `PORT` (port only) and the table's `egresses` entry for `name`. */
  listen?: HostPort
  /** `--admin`; else the egress entry's adminPort on 127.0.0.1; `false` disables the admin server. */
  admin?: HostPort | false
  name?: string
  zone?: string
  instance?: string
  /** Environment read for `PORT` (default process.env). */
  env?: NodeJS.ProcessEnv
  proxy?: Partial<ProxyOptions>
  /** How long a shutdown waits for open connections before closing them. Default DEFAULT_GRACE_MS (30 s). */
  graceMs?: number
  /**
   * Static mode: the directory holding a saved egress identity (key + per-mesh certificates) for
   * terminate-mtls routes. NATS mode uses `nats.stateDir`. Without one the key lives in memory only.
   */
  identityDir?: string
  /** How long one certificate request waits for the reconciler's reply. Default 5 s. */
  certRequestTimeoutMs?: number
  /**
   * `--trusted-key`: public nkeys of the reconciler's signing keys. Non-empty: only tables signed by one of them
   * are admitted (docs/decisions/010-signed-tables.md). Empty or absent: tables are not checked for a
   * signature, and the egress says so loudly at start.
   */
  trustedKeys?: readonly string[]
  /** A logger to use instead of a new pino logger on stdout (tests). */
  logger?: Logger
  logLevel?: string
  logFormat?: LogFormat
  /** Install SIGTERM/SIGINT (drain and exit) and SIGHUP (reload) handlers. */
  signals?: boolean
  /**
   * `--workers`: data-plane processes sharing the listener (docs/decisions/015-egress-workers.md). 1 (the
   * default here; the CLI's default is the number of cores): this process proxies itself, as before.
   */
  workers?: number
}

export interface EgressHandle {
  actor: Actor<typeof egressMachine>
  /** The proxy of this process (`workers` 1); undefined with workers, whose proxies run in `pool`. */
  proxy: TcpProxy | undefined
  /** The data-plane workers (`workers` > 1). */
  pool: WorkerPool | undefined
  metrics: EgressMetrics
  /** The mesh identities (terminate-mtls routes). */
  identity: EgressIdentity
  /** Resolves once serving (or rejects with the error that stopped the start). */
  ready: Promise<{ listen: AddressInfo; admin?: AddressInfo }>
  /** Re-reads the table file (what SIGHUP does). */
  reload(): void
  /** Drains (stop accepting, wait for connections up to the grace period) and stops. */
  shutdown(): Promise<{ code: number; error?: string }>
  /** Resolves when the machine has stopped: code 0, or 1 with the error. */
  done: Promise<{ code: number; error?: string }>
}

/** The state name shown in logs and /ready: the top-level state of the machine. */
export function stateName(snapshot: SnapshotFrom<typeof egressMachine>): string {
  const v = snapshot.value
  return typeof v === 'string' ? v : (Object.keys(v)[0] ?? 'unknown')
}

const ignoreSignal = () => {}

/**
 * Starts an egress on a table file (`staticFile`) or on NATS (`nats`). Never throws: failures end `done`
 * (and reject `ready`, which resolves once the first table serves, `degraded` included).
 */
export function runEgress(options: EgressOptions): EgressHandle {
  const root = options.logger ?? createLogger({ name: 'egress', level: options.logLevel, format: options.logFormat })
  const log = root.child({
    component: 'egress',
    ...(options.zone ? { zone: options.zone } : {}),
    ...(options.name ? { egress: options.name } : {}),
  })
  const workers = Math.max(1, Math.floor(options.workers ?? 1))
  const proxy = workers === 1 ? new TcpProxy(log.child({ component: 'proxy' }), options.proxy) : undefined
  const natsMode = options.nats !== undefined
  /** Generation every worker has swapped to (workers > 1). */
  let poolGeneration = -1
  const metrics = createEgressMetrics(proxy, () => (proxy ? (proxy.current?.generation ?? -1) : poolGeneration), {
    version: packageVersion(),
    ready: () => READY_STATES.has(stateName(actor.getSnapshot())),
    ...(natsMode ? { natsConnected: () => nats?.state().connected === true } : {}),
  })
  const startedAt = new Date()
  let admin: { address: AddressInfo; close(): Promise<void> } | undefined
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS
  const instance = options.instance ?? `i-${process.pid}`
  let pool: WorkerPool | undefined
  if (workers > 1) {
    const proxyOptions = { ...DEFAULT_PROXY_OPTIONS, ...options.proxy }
    pool = new WorkerPool({
      workers,
      log,
      registry: metrics.registry,
      settings: {
        proxy: { ...proxyOptions, maxConnections: perWorkerCap(proxyOptions.maxConnections, workers) },
        ...(options.logLevel
          ? { logLevel: options.logLevel }
          : options.logger
            ? { logLevel: options.logger.level }
            : {}),
        ...(options.logFormat ? { logFormat: options.logFormat } : {}),
        ...(options.zone ? { zone: options.zone } : {}),
        ...(options.name ? { name: options.name } : {}),
        instance,
        graceMs,
      },
    })
  }
  let nats: NatsSubscriber | undefined
  const trustedKeys = options.trustedKeys ?? []
  /** `--static`: the table file's admission (start and SIGHUP), in a worker thread ended after each file. */
  const staticAdmitter: TableAdmitter | undefined = natsMode
    ? undefined
    : startTableAdmitter(log.child({ component: 'admission' }), { endAfterBytes: 0 })
  let stopping = false
  let resolveConnected!: () => void
  const connected = new Promise<void>((r) => {
    resolveConnected = r
  })

  const identityDir = options.nats?.stateDir ?? options.identityDir
  const identity = new EgressIdentity({
    zone: options.zone ?? 'default',
    egress: options.name ?? 'egress',
    instance,
    ...(identityDir ? { stateDir: identityDir } : {}),
    ...(natsMode
      ? {
          request: async (req) => {
            if (nats === undefined) throw new Error('NATS not connected yet')
            const text = await nats.request(
              certSubject(req.zone),
              JSON.stringify(req),
              options.certRequestTimeoutMs ?? 5000,
            )
            return JSON.parse(text) as unknown
          },
        }
      : {}),
    log,
    ...(pool ? { onMaterial: (mesh, material) => pool?.identity(mesh, material) } : {}),
  })
  if (proxy) proxy.identities = identity

  /**
   * Installs an admitted table; resolves with the swap time in ms. With workers: once every worker has swapped
   * (the time is the primary's, from handing the table on to the last worker's answer).
   */
  const install = async (table: ZoneTable): Promise<number> => {
    const t0 = performance.now()
    if (pool) {
      // identities first (the channel keeps the order): a new mesh's saved certificate serves the table's first
      // terminate-mtls connection in every worker
      identity.sync(meshCasOf(table))
      await pool.setTable(table)
      poolGeneration = table.generation ?? -1
    } else {
      const routing = new RoutingTable(table)
      identity.sync(routing.meshCas)
      proxy!.setTable(routing)
    }
    const ms = performance.now() - t0
    metrics.swapSeconds.observe(ms / 1000)
    return ms
  }

  /** Where the proxy (or the workers) listen. */
  const listening = (): AddressInfo | undefined => (pool ? pool.address() : proxy!.address())

  const machine = egressMachine.provide({
    actors: {
      connectBus: fromPromise(() => connected),
      loadTable: fromPromise<unknown, void>(async () => {
        if (options.staticFile === undefined || staticAdmitter === undefined)
          throw new Error('no table file in NATS mode')
        const file = options.staticFile
        // read, parsed and checked in the admission worker thread, as NATS tables are (decision 012): the event
        // loop keeps proxying while a large file is admitted, and gets the compact routes back
        const { out, ms, thread, readError } = await staticAdmitter.admit({
          kind: 'file',
          path: file,
          ...(options.zone ? { zone: options.zone } : {}),
          trustedKeys,
        })
        if (readError !== undefined) throw new Error(readError)
        log.debug({ file, ms: Math.round(ms), thread, ok: out.ok }, 'table file admitted')
        if (!out.ok && out.stage === 'json') throw new Error(fileProblem(file, out))
        return admittedValue(out)
      }),
      start: fromPromise<StartOutput, { table: ZoneTable }>(async ({ input }) => {
        await identity.ready
        const where = resolveListen(input.table, { ...options, env: options.env ?? process.env })
        let ms: number
        let addr: AddressInfo
        if (pool) {
          // every worker starts on this table and listens; none accepts before
          const t0 = performance.now()
          identity.sync(meshCasOf(input.table))
          addr = await pool.start(input.table, where)
          poolGeneration = input.table.generation ?? -1
          ms = performance.now() - t0
        } else {
          ms = await install(input.table)
          addr = await proxy!.listen(where.host, where.port)
        }
        // the data path the proxies relay with (the workers run the same Node, so they choose as this process would)
        const dataPath = pool
          ? (options.proxy?.dataPath ?? DEFAULT_PROXY_OPTIONS.dataPath) === 'lean' && leanBindings()
            ? 'lean'
            : 'net'
          : proxy!.dataPath
        log.info(
          { listen: `${addr.address}:${addr.port}`, dataPath, ...(pool ? { workers: pool.size } : {}) },
          'listener up',
        )
        await startAdmin(input.table)
        return { listen: `${addr.address}:${addr.port}`, ms }
      }),
      applyTable: fromPromise<{ ms: number }, { table: ZoneTable }>(async ({ input }) => ({
        ms: await install(input.table),
      })),
      drain: fromPromise(async () => {
        let destroyed: number
        if (pool) {
          // logged once every worker has closed its listener: new connections are refused from then on
          destroyed = await pool.drain(graceMs, (open) => log.info({ open, graceMs, workers: pool.size }, 'draining'))
        } else {
          log.info({ open: proxy!.activeConnections, graceMs }, 'draining')
          destroyed = await proxy!.drain(graceMs)
        }
        log.info({ destroyed }, 'drained')
        return { destroyed }
      }),
    },
    actions: {
      reportRejected: (_, r: TableRejected) => {
        metrics.tableRejections.inc({ reason: r.reason })
        const fields = { reason: r.reason, problems: r.problems, generation: r.generation, digest: r.digest }
        // Re-reading an unchanged file is routine (SIGHUP without an edit): not worth a warning.
        if (r.reason === 'unchanged') log.info(fields, 'table rejected')
        else log.warn(fields, 'table rejected')
        if (r.source === 'nats') nats?.rejected({ ...r, reason: `${r.reason}: ${r.problems.slice(0, 3).join('; ')}` })
      },
      reportSwapped: ({ context }, s: TableSwapped) => {
        log.info(
          { generation: s.generation, revision: s.revision, digest: s.digest, routes: s.routes, ms: s.ms },
          'table swapped',
        )
        if (s.source === 'nats' && context.table?.digest === s.digest) nats?.applied(context.table, s.ms)
        // The replaced table: the proxy (or every worker) routes on the new one, and the lifecycle, /config_dump,
        // /stats and the heartbeat read only `context.table`; a state-file write still in progress holds it
        // (holdCompact), and the release waits for it. Freed now rather than at V8's next major GC (decision 012).
        const prev = served
        served = context.table
        if (prev !== undefined && prev !== served) releaseTable(prev)
      },
    },
  })

  /** The table last reported swapped (`context.table`), released when the next one replaces it. */
  let served: ZoneTable | undefined

  let adminStarting: Promise<void> | undefined
  /**
   * Starts the admin server once: at process start when `--admin` is given (so /ready answers 503 while
   * connecting, like Envoy), else when the first table names the egress's adminPort.
   */
  function startAdmin(table?: ZoneTable): Promise<void> {
    if (adminStarting) return adminStarting
    if (!table && !options.admin) return Promise.resolve()
    adminStarting = bindAdmin(table)
    return adminStarting
  }

  async function bindAdmin(table: ZoneTable | undefined): Promise<void> {
    if (options.admin === false) return
    const entry = table ? findEgressEntry(table, options.name) : undefined
    const where =
      options.admin ?? (entry?.adminPort !== undefined ? { host: '127.0.0.1', port: entry.adminPort } : undefined)
    if (where === undefined) return
    const deps = {
      state: () => ({ value: stateName(actor.getSnapshot()), context: actor.getSnapshot().context }),
      snapshot: async () => (pool ? pool.snapshot() : snapshotOf(proxy!)),
      listen: listening,
      ...(pool ? { scrape: () => pool!.scrape(), workers: () => pool!.workers() } : {}),
      identity: () => identity.state(),
      metrics,
      drain: (exit: boolean) => actor.send({ type: 'drain', exit }),
      log: log.child({ component: 'admin' }),
      ...(natsMode ? { nats: () => nats?.state() ?? { connected: false, loading: true } } : {}),
      serverInfo: () => ({
        version: packageVersion(),
        node: process.version,
        pid: process.pid,
        started: startedAt.toISOString(),
        uptimeSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
        mode: natsMode ? 'nats' : 'static',
      }),
    }
    try {
      admin = await startAdminServer(deps, where.host, where.port)
      log.info({ admin: `${admin.address.address}:${admin.address.port}` }, 'admin up')
    } catch (err) {
      // The table's adminPort is shared by replicas on one host: only an explicit --admin must bind.
      if (options.admin !== undefined) throw err
      log.warn({ err }, 'admin server not started (adminPort in use?); pass --admin HOST:PORT')
    }
  }

  if (trustedKeys.length === 0)
    log.warn(
      'NO TRUSTED KEY CONFIGURED: tables are not checked for a signature, so anyone who can write the tables ' +
        '(the KV bucket or the --static file) decides where this egress sends traffic. Pass --trusted-key ' +
        '(or ZONEGATE_TRUSTED_KEY) with the public key printed by `zonegate signing-key generate`.',
    )
  else log.info({ trustedKeys }, 'tables must be signed by a trusted key')

  const actor = createActor(machine, {
    input: {
      source: natsMode ? 'nats' : 'static',
      instance,
      ...(trustedKeys.length > 0 ? { trustedKeys } : {}),
      ...(options.zone ? { zone: options.zone } : {}),
      ...(options.name ? { name: options.name } : {}),
    },
  })

  let resolveDone!: (r: { code: number; error?: string }) => void
  const done = new Promise<{ code: number; error?: string }>((r) => {
    resolveDone = r
  })
  let resolveReady!: (v: { listen: AddressInfo; admin?: AddressInfo }) => void
  let rejectReady!: (e: Error) => void
  const ready = new Promise<{ listen: AddressInfo; admin?: AddressInfo }>((res, rej) => {
    resolveReady = res
    rejectReady = rej
  })
  ready.catch(() => {})

  const onTerm = () => {
    if (actor.getSnapshot().status === 'active') actor.send({ type: 'drain', exit: true })
  }
  const onHup = () => {
    if (natsMode) log.info('SIGHUP ignored in NATS mode (tables come from KV)')
    else actor.send({ type: 'reload' })
  }
  if (options.signals) {
    process.on('SIGTERM', onTerm)
    process.on('SIGINT', onTerm)
    process.on('SIGHUP', onHup)
  }

  let last = ''
  actor.subscribe({
    next(snapshot) {
      const name = stateName(snapshot)
      if (name === last) return
      last = name
      log.info({ state: name }, 'state changed')
      nats?.beat()
      if (name === 'serving' || name === 'degraded')
        resolveReady({ listen: listening()!, ...(admin ? { admin: admin.address } : {}) })
      if (snapshot.status === 'done') void finish(snapshot.context.error)
    },
    error(err) {
      void finish(err instanceof Error ? err.message : String(err))
    },
  })

  let finished = false
  async function finish(error: string | undefined): Promise<void> {
    if (finished) return
    finished = true
    if (options.signals) {
      process.off('SIGTERM', onTerm)
      process.off('SIGINT', onTerm)
      process.off('SIGHUP', onHup)
      // A second signal while closing (Ctrl-C reaches the whole process group *and* foreman forwards it) must
      // not kill the process mid-exit: the process is ending anyway.
      for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, ignoreSignal)
    }
    if (error) log.error({ err: new Error(error) }, 'egress stopped')
    else log.info('egress stopped')
    rejectReady(new Error(error ?? 'stopped before serving'))
    stopping = true
    identity.stop()
    await staticAdmitter?.close()
    await nats?.close()
    await (pool ? pool.close() : proxy!.close())
    await admin?.close()
    resolveDone(error ? { code: 1, error } : { code: 0 })
  }

  /** What the heartbeat reports: the lifecycle state and the served table, listener and admin. */
  function heartbeatOf() {
    const snap = actor.getSnapshot()
    const t = snap.context.table
    const addr = listening()
    return {
      state: stateName(snap),
      ...(t?.generation === undefined ? {} : { generation: t.generation }),
      ...(t ? { digest: t.digest } : {}),
      ...(addr ? { listen: `${addr.address}:${addr.port}` } : {}),
      ...(admin ? { admin: `${admin.address.address}:${admin.address.port}` } : {}),
    }
  }

  actor.start()
  if (options.admin)
    startAdmin().catch((err: unknown) => {
      log.error({ err }, 'admin server failed to start')
      actor.stop()
      void finish(`admin: ${(err as Error).message}`)
    })
  if (options.nats) {
    const o = options.nats
    import('./transport/nats-mode.js')
      .then(async ({ startNatsMode }) => {
        nats = await startNatsMode({
          servers: o.servers,
          ...(o.auth ? { auth: o.auth } : {}),
          zone: options.zone as string,
          egress: options.name as string,
          instance,
          ...(o.stateDir ? { stateDir: o.stateDir } : {}),
          ...(o.heartbeatMs ? { heartbeatMs: o.heartbeatMs } : {}),
          ...(o.watchCheckMs ? { watchCheckMs: o.watchCheckMs } : {}),
          ...(trustedKeys.length > 0 ? { trustedKeys } : {}),
          log,
          send: (e) => {
            if (e.type === 'bus.restored') identity.renewPending()
            if (actor.getSnapshot().status === 'active') actor.send(e)
          },
          heartbeat: heartbeatOf,
          onConnected: resolveConnected,
          stopping: () => stopping,
        })
        if (stopping) await nats?.close() // stopped while the subscriber was starting
      })
      .catch((err: unknown) => {
        log.error({ err }, 'NATS mode failed to start')
        void finish(`NATS mode failed to start: ${(err as Error).message}`)
      })
  }
  return {
    actor,
    proxy,
    pool,
    metrics,
    identity,
    ready,
    reload: () => actor.send({ type: 'reload' }),
    shutdown: () => {
      if (actor.getSnapshot().status === 'active') actor.send({ type: 'drain', exit: true })
      return done
    },
    done,
  }
}
