import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import { type LogFormat, packageVersion } from '../lib/common.js'
import { createLogger } from '../lib/logging.js'
import type { NatsAuthOptions } from '../lib/nats-connect.js'
import { type BackoffPolicy, backoffMs } from '../schemas/backoff.js'
import { gitRevision, shaOfRevision } from '../schemas/revision.js'
import { loadSigningKey, SigningKeyError, type TableSigner } from '../schemas/signing.js'
import type { ReconcilerStatus } from '../schemas/status.js'
import { Bucket, LEASES_TTL_MS } from '../schemas/subjects.js'
import { type EventLog, startEventLog } from './admin/event-log.js'
import { type AdminServer, createReconcilerMetrics, startAdminServer } from './admin/http.js'
import { buildGrid, buildTimelines, type PageData } from './admin/page-data.js'
import { DEFAULT_RETRY_POLICY, type RetryPolicy, retryDecision } from './core/conditions.js'
import { DEFAULT_ROLLOUT_TIMEOUT_MS } from './core/rollout.js'
import { createPassDeps } from './pass-deps.js'
import {
  forgetPublished,
  initialPassState,
  type PassReport,
  type PassState,
  rememberGenerations,
} from './pass-state.js'
import { reconcileOnce } from './reconcile.js'
import { type RolloutTracker, startRolloutTracker } from './rollout/tracker.js'
import { createGitSource } from './source/git-source.js'
import {
  initialStatus,
  passOutcome,
  statusAfter,
  statusLayoutLost,
  statusReconciling,
  statusStandby,
  statusWithRollouts,
} from './steps/status.js'
import { type CertServer, serveCertRequests } from './transport/cert-server.js'
import { type Lease, startLease } from './transport/lease.js'
import { type Bus, bucketEpochs, connectBus, ensureNatsLayout, LAYOUT_EPOCH_BUCKETS } from './transport/nats-bus.js'
import { isLayoutMissing } from './transport/nats-errors.js'
import { type ReconcileServer, serveReconcileRequests } from './transport/reconcile-requests.js'
import { readStatus, writeStatus } from './transport/status-store.js'
import { createTriggerLoop, pollDelayMs } from './triggers.js'

/** Retries of the NATS layout check at start and after a lost store: 250 ms doubling to 5 s, ±20 %. */
const LAYOUT_RETRY: BackoffPolicy = { baseMs: 250, maxMs: 5000, jitter: 0.2 }

/**
 * The reconciler process (docs/design.md §4): config, the root logger (only here), wiring of source, NATS, lease,
 * triggers and admin HTTP, the pass loop, and graceful shutdown. Only the lease holder runs passes, publishes
 * and answers `zonegate.cmd.reconcile`; standbys wait and take over when the lease lapses.
 */
export interface ReconcilerOptions {
  repo: string
  branch: string
  path?: string
  intervalMs: number
  /** Admin HTTP address; undefined = no HTTP server. */
  http?: { host: string; port: number }
  nats: string[]
  /** Credentials, TLS and inbox prefix for NATS (`natsConnectOptions` of --creds/--nats-ca/…). */
  natsAuth?: NatsAuthOptions
  cacheDir: string
  webhookSecretFile?: string
  /** `--insecure-webhook`: accept unsigned webhook pushes when no secret is set (development only). */
  insecureWebhook?: boolean
  /** How long a webhook body may take (default 10 s; tests shorten it). */
  webhookBodyTimeoutMs?: number
  /** `--signing-key`: the nkey seed file tables are signed with (docs/decisions/010-signed-tables.md). */
  signingKeyFile?: string
  allowEmpty: boolean
  defaultZone: string
  /** Unique id of this process (lease value, status `reconciler`). */
  id?: string
  /** Injected for tests: a logger (default pino to stderr), lease TTL, retry policy, randomness. */
  logger?: Logger
  /** Level and format of the default logger (`--log-level`, `--log-format`; else $LOG_LEVEL, $LOG_FORMAT). */
  logLevel?: string
  logFormat?: LogFormat
  leaseTtlMs?: number
  /** `--lease-renew`: how often the holder renews (default ttl/3). */
  leaseRenewMs?: number
  /** Timeout of JetStream API calls and publishes (default 5000 ms). */
  natsTimeoutMs?: number
  retryPolicy?: RetryPolicy
  random?: () => number
  /** Install SIGTERM/SIGINT handlers that stop gracefully (the CLI sets this). */
  handleSignals?: boolean
  /** `--rollout-timeout`: how long a published zone may take to converge (default 60 000 ms). */
  rolloutTimeoutMs?: number
  /** Instance liveness for rollout tracking (default: the bucket TTL, 30 s). For tests. */
  instancesTtlMs?: number
  /** `--replicas`: replicas of every bucket and the stream it creates (default 3 in a cluster, else 1). */
  replicas?: number
  /** The largest table published, bytes of envelope JSON (default 256 MiB, MAX_TABLE_BODY_BYTES). For tests. */
  maxTableBytes?: number
}

export interface RunningReconciler {
  id: string
  /** Admin base URL (`http://host:port`) when HTTP is on. */
  httpUrl?: string
  status(): ReconcilerStatus
  isLeader(): boolean
  /** Runs a pass now (leader only) and resolves with its report. */
  trigger(): Promise<PassReport | undefined>
  /** Graceful stop: abort/finish the pass, release the lease, close HTTP and NATS. Idempotent. */
  stop(): Promise<void>
  /** Resolves when stopped. */
  done: Promise<void>
}

/** Starts the reconciler; resolves once NATS is connected, the layout exists and the lease was tried. */
export async function runReconciler(opts: ReconcilerOptions): Promise<RunningReconciler> {
  const id = opts.id ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
  const log = opts.logger ?? createLogger({ name: 'reconciler', level: opts.logLevel, format: opts.logFormat })
  const random = opts.random ?? Math.random
  const policy = opts.retryPolicy ?? DEFAULT_RETRY_POLICY
  const webhookSecret = opts.webhookSecretFile
    ? Buffer.from((await readFile(opts.webhookSecretFile, 'utf8')).trim(), 'utf8')
    : undefined
  if (opts.insecureWebhook && !webhookSecret)
    log.warn(
      'INSECURE WEBHOOK: POST /hooks/git accepts unsigned requests (--insecure-webhook); set --webhook-secret-file',
    )
  const signer = opts.signingKeyFile ? await readSigningKey(opts.signingKeyFile) : undefined
  if (signer) log.info({ publicKey: signer.publicKey }, 'tables are signed')
  else
    log.warn(
      'NO SIGNING KEY: tables are published unsigned, and egresses that pin a trusted key will refuse them. ' +
        'Pass --signing-key FILE (or ZONEGATE_SIGNING_KEY); `zonegate signing-key generate --out FILE` makes one.',
    )
  const source = createGitSource({
    repo: opts.repo,
    branch: opts.branch,
    path: opts.path,
    cacheDir: opts.cacheDir,
    log: log.child({ component: 'git-source' }),
  })
  log.info({ id, repo: source.display, branch: opts.branch, path: opts.path ?? '' }, 'reconciler starting')

  let status = initialStatus(id, new Date())
  let stopping: Promise<void> | undefined
  let firstPassDone = false
  let connected = false
  let lease: Lease | undefined
  // Readiness says whether this reconciler can publish (issue #16.1): NATS connected, the layout verified
  // since the last (re)connect, nothing lost left to republish (the leader: until its pass republished every
  // zone; a standby: until the tables are back), and (as leader) the last pass not failing to write to NATS.
  let layoutVerified = false
  let republishPending = false
  let publishFailing = false
  const isReady = () =>
    connected &&
    layoutVerified &&
    !republishPending &&
    !(lease?.isLeader() && publishFailing) &&
    (firstPassDone || (lease !== undefined && !lease.isLeader()))
  const metrics = createReconcilerMetrics({
    version: packageVersion(),
    ready: () => status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'),
    leader: () => lease?.isLeader() ?? false,
    natsConnected: () => connected,
  })
  const startedAt = new Date()
  // the status page's data: what `zonegate status` shows (read from NATS) plus timelines from recent events
  let busForPage: Bus | undefined
  let eventLog: EventLog | undefined
  const pageData = async (): Promise<PageData | { error: string }> => {
    if (!busForPage) return { error: 'not connected to NATS yet' }
    const { readStatusView } = await import('./cli/status.js')
    const r = await readStatusView(busForPage)
    const events = eventLog?.events() ?? []
    return {
      time: new Date().toISOString(),
      ready: r.ready,
      reason: r.reason,
      view: r.view,
      timelines: buildTimelines(events),
      grid: buildGrid(r.view, events),
    }
  }
  let loop: ReturnType<typeof createTriggerLoop<PassReport | undefined>> | undefined
  let admin: AdminServer | undefined
  if (opts.http) {
    admin = await startAdminServer({
      ...opts.http,
      log: log.child({ component: 'admin' }),
      metrics,
      status: () => status,
      ready: isReady,
      view: pageData,
      serverInfo: () => ({
        id,
        version: packageVersion(),
        node: process.version,
        pid: process.pid,
        started: startedAt.toISOString(),
        uptimeSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
        leader: lease?.isLeader() ?? false,
      }),
      webhookSecret,
      ...(opts.insecureWebhook && !webhookSecret ? { insecureWebhook: true } : {}),
      ...(opts.webhookBodyTimeoutMs ? { webhookBodyTimeoutMs: opts.webhookBodyTimeoutMs } : {}),
      onWebhook: () => loop?.poke(),
    })
    log.info({ url: admin.url }, 'admin listening')
  }

  const bus: Bus = await connectBus({
    servers: opts.nats,
    ...(opts.natsAuth ? { auth: opts.natsAuth } : {}),
    name: `zonegate-reconciler-${id}`,
    log,
    apiTimeoutMs: opts.natsTimeoutMs,
  })
  connected = true
  busForPage = bus
  if (admin) eventLog = startEventLog(bus, log.child({ component: 'admin' }))
  let onReconnect: () => void = () => {}
  void (async () => {
    for await (const s of bus.nc.status()) {
      if (s.type === 'disconnect') connected = false
      if (s.type === 'reconnect') {
        connected = true
        onReconnect()
      }
    }
  })().catch(() => {})
  const layoutOptions = {
    ...(opts.leaseTtlMs ? { leasesTtlMs: opts.leaseTtlMs } : {}),
    ...(opts.replicas ? { replicas: opts.replicas } : {}),
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await ensureNatsLayout(bus, layoutOptions)
      layoutVerified = true
      break
    } catch (err) {
      const ms = backoffMs(attempt, LAYOUT_RETRY, random)
      log.warn({ err, attempt }, `nats layout not ready; retrying in ${ms} ms`)
      await new Promise((r) => setTimeout(r, ms))
    }
  }
  const stored = await readStatus(bus).catch(() => null)
  status = initialStatus(id, new Date(), stored?.status)

  const state: PassState = initialPassState()
  state.lastAppliedSha = shaOfRevision(stored?.status.lastAppliedRevision)
  const deps = createPassDeps({
    opts,
    source,
    bus,
    log,
    ...(signer ? { signer } : {}),
    ...(opts.maxTableBytes === undefined ? {} : { maxTableBytes: opts.maxTableBytes }),
  })
  let failures = 0
  let lastReport: PassReport | undefined
  // Rollout tracking (leader only) runs beside the pass loop and rewrites the status when a rollout moves.
  let tracker: RolloutTracker | undefined
  let takeoverRead: Promise<void> = Promise.resolve()
  let statusWrite: Promise<void> = Promise.resolve()
  const saveStatus = (): Promise<void> => {
    // Serialized, and each write sends the status of the moment it runs (never an older one after a newer).
    statusWrite = statusWrite
      .then(() => writeStatus(bus, status))
      .then(
        () => {},
        (err) => log.warn({ err }, 'status not written'),
      )
    return statusWrite
  }
  // commit-to-converged: from the start of the pass that fetched a revision to its `commit.converged`
  const fetchedAt = new Map<string, number>()
  const rememberFetch = (revision: string, at: number) => {
    fetchedAt.set(revision, at)
    if (fetchedAt.size > 50) fetchedAt.delete(fetchedAt.keys().next().value as string)
  }
  const startTracker = () =>
    startRolloutTracker({
      bus,
      log,
      onCommitConverged: (revision) => {
        const at = fetchedAt.get(revision)
        if (at !== undefined) metrics.commitToConverged.observe((Date.now() - at) / 1000)
        fetchedAt.delete(revision)
      },
      timeoutMs: opts.rolloutTimeoutMs ?? DEFAULT_ROLLOUT_TIMEOUT_MS,
      liveTtlMs: opts.instancesTtlMs,
      onChange: () => {
        if (!tracker || !lease?.isLeader()) return
        status = statusWithRollouts(status, tracker.statuses())
        void saveStatus()
      },
    })

  const runPass: Parameters<typeof createTriggerLoop<PassReport | undefined>>[0]['runPass'] = async (hooks) => {
    const interval = pollDelayMs(opts.intervalMs, random)
    if (!lease?.isLeader()) {
      // A standby that saw the store lost is ready again once the leader republished (tables are back).
      if (republishPending) {
        const values = await bus.kv.tables
          .status()
          .then((s) => s.values)
          .catch(() => 0)
        if (values > 0) republishPending = false
      }
      return { result: undefined, nextDelayMs: interval }
    }
    await takeoverRead
    const t0 = performance.now()
    const beforePass = status
    status = statusReconciling(status, `branch ${opts.branch}`, failures + 1, new Date())
    const report = await reconcileOnce(deps, state, hooks)
    const seconds = (performance.now() - t0) / 1000
    metrics.passes.inc({ result: report.result })
    metrics.passDuration.observe({ result: report.result }, seconds)
    if (report.result === 'applied') for (const z of report.zones) metrics.publishes.inc({ zone: z.zone })
    if (report.result === 'applied' || report.result === 'unchanged') metrics.lastSuccess.set(Date.now() / 1000)
    if (report.result === 'applied') rememberFetch(report.revision, Date.now() - seconds * 1000)
    firstPassDone = true
    lastReport = report
    publishFailing = report.result === 'failed' && report.error.code === 'PublishFailed'
    if (report.result === 'failed' && isLayoutMissing(report.error)) void heal('table or event write found no stream')
    if (republishPending && (report.result === 'applied' || report.result === 'unchanged')) republishPending = false
    const outcome = passOutcome(report)
    if (report.result === 'applied') tracker?.track(report)
    status = statusWithRollouts(
      statusAfter(status, report, state.inventory, new Date(), beforePass),
      tracker?.statuses(),
    )
    if (report.result === 'failed') log.warn({ err: report.error, ms: Math.round(seconds * 1000) }, 'pass failed')
    else log.debug({ result: report.result, ms: Math.round(seconds * 1000) }, 'pass done')
    // Status is written at the end of every pass, whatever happened (best effort when NATS is down).
    if (report.result !== 'superseded') await saveStatus()
    if (report.result === 'superseded') return { result: report, nextDelayMs: interval }
    failures = outcome?.result === 'failed' && report.result === 'failed' ? failures + 1 : 0
    const decision = outcome ? retryDecision(outcome, failures, policy, random) : { kind: 'none' as const }
    return { result: report, nextDelayMs: decision.kind === 'retry' ? decision.delayMs : interval }
  }

  loop = createTriggerLoop<PassReport | undefined>({
    runPass,
    resolveTip: () => source.resolve(),
    onSuperseded: (sha, by) =>
      log.child({ component: 'reconcile', revision: gitRevision(opts.branch, sha) }).info({ by }, 'superseding'),
    onError: (err) => log.error({ err }, 'trigger loop error'),
  })

  /**
   * Layout recovery (issue #16.1; docs/reconciler.md "Recovery"): after every reconnect, and whenever a lease or
   * table write finds a bucket or the stream gone, re-run `ensureNatsLayout` (creates only what is missing,
   * with the configured replicas) until it succeeds. If it had to create the tables bucket, the server lost its
   * store: what this process published is gone, so the pass state is reset to "nothing published" (keeping
   * each zone's generation, so they continue), the builtin CAs and applied mTLS state are read (created) again,
   * and a pass is queued. Readiness stays false until that pass has republished every zone.
   */
  let healing: Promise<void> | undefined
  let epochs = await bucketEpochs(bus).catch(() => ({}) as Record<string, string>)
  const heal = (why: string): Promise<void> => {
    layoutVerified = false
    healing ??= (async () => {
      for (let attempt = 1; !stopping; attempt++) {
        try {
          const report = await ensureNatsLayout(bus, layoutOptions)
          // Whoever recreated them (this process or another reconciler), a bucket whose stream has another
          // creation time than the one this process worked with was lost: compare, do not trust `created`.
          const now = await bucketEpochs(bus)
          const lost = LAYOUT_EPOCH_BUCKETS.filter((b) => epochs[b] !== undefined && now[b] !== epochs[b])
          epochs = now
          if (lost.length > 0) {
            log.warn({ lost, created: report.created, why }, 'NATS lost zonegate’s layout (wiped store?): recreated it')
            status = statusLayoutLost(status, lost, new Date())
            if (lease?.isLeader()) void saveStatus() // a standby never writes the status
          }
          if (lost.includes(Bucket.Leases)) await lease?.reclaim()
          if (lost.includes(Bucket.Tables)) forgetPublished(state)
          if (lost.includes(Bucket.Tables) || lost.includes(Bucket.Ca)) {
            state.appliedMtls = undefined
            state.meshCas = undefined
            republishPending = true
          }
          layoutVerified = true
          loop?.poke()
          return
        } catch (err) {
          const ms = backoffMs(attempt, LAYOUT_RETRY, random)
          log.warn({ err, attempt, why }, `nats layout check failed; retrying in ${ms} ms`)
          await new Promise((r) => setTimeout(r, ms))
        }
      }
    })().finally(() => {
      healing = undefined
    })
    return healing
  }
  onReconnect = () => void heal('reconnected')

  let requests: ReconcileServer | undefined
  let certs: CertServer | undefined
  const onLeader = (leader: boolean) => {
    if (leader) {
      rememberGenerations(state) // a zone found missing later (a lost store) continues its generation
      state.inventory = undefined // another reconciler may have published meanwhile
      state.appliedMtls = undefined // and applied another revision's meshes
      certs ??= serveCertRequests(bus, {
        lookup: (mesh) => state.meshCas?.get(mesh),
        get ready() {
          return state.meshCas !== undefined
        },
        now: () => new Date(),
      })
      tracker ??= startTracker()
      // What the previous holder left (issue #12.4, #16.4): the revision it finished (so a commit it left
      // half-published is recognised as new and its missing events are sent) and the rollouts it was following.
      const t = tracker
      takeoverRead = readStatus(bus)
        .then((stored) => {
          if (!stored) return
          state.lastAppliedSha = shaOfRevision(stored.status.lastAppliedRevision)
          t.resume(stored.status.zones)
        })
        .catch((err) => log.warn({ err }, 'status of the previous lease holder not read'))
      requests ??= serveReconcileRequests(bus, async () => {
        const report = await (loop as NonNullable<typeof loop>).trigger()
        if (!report) return { ok: false, error: 'this reconciler is not the active one' }
        if (report.result === 'applied' || report.result === 'unchanged') return { ok: true, revision: report.revision }
        return { ok: false, error: 'error' in report ? report.error.message : `${report.revision} ${report.result}` }
      })
      void takeoverRead.then(() => loop?.poke())
    } else {
      const t = tracker
      tracker = undefined
      void t?.stop()
      if (requests) {
        const r = requests
        requests = undefined
        void r.stop()
      }
      if (certs) {
        const c = certs
        certs = undefined
        state.meshCas = undefined
        void c.stop()
      }
    }
  }
  // The bucket's TTL decides when the key expires (2.9 has no per-key TTL): self-fence on that, not on the flag.
  let leaseTtlMs = opts.leaseTtlMs ?? LEASES_TTL_MS
  const bucketTtl = await bus.kv.leases
    .status()
    .then((s) => s.ttl)
    .catch(() => 0)
  if (bucketTtl > 0 && bucketTtl !== leaseTtlMs) {
    log.warn(
      { bucketTtlMs: bucketTtl, leaseTtlMs },
      `KV ${Bucket.Leases} has a TTL of ${bucketTtl} ms (created by another process): the lease uses it`,
    )
    leaseTtlMs = bucketTtl
  }
  const leaseRenewMs =
    opts.leaseRenewMs !== undefined && opts.leaseRenewMs <= leaseTtlMs / 2 ? opts.leaseRenewMs : undefined
  lease = await startLease({
    kv: bus.kv.leases,
    id,
    log,
    ttlMs: leaseTtlMs,
    ...(leaseRenewMs ? { renewMs: leaseRenewMs } : {}),
    onLayoutMissing: () => void heal('lease bucket missing'),
  })
  lease.onChange(onLeader)
  if (lease.isLeader()) onLeader(true)
  else {
    log.info({ id }, 'standby: another reconciler holds the lease')
    firstPassDone = false
    status = statusStandby(status, new Date())
  }

  let resolveDone: () => void = () => {}
  const done = new Promise<void>((r) => {
    resolveDone = r
  })
  const stop = () => {
    stopping ??= (async () => {
      log.info('reconciler stopping')
      await loop?.stop()
      await requests?.stop().catch(() => {})
      await certs?.stop().catch(() => {})
      await tracker?.stop().catch(() => {})
      await statusWrite
      await lease?.stop({ release: true }).catch((err) => log.warn({ err }, 'lease release failed'))
      eventLog?.stop()
      await admin?.close()
      await bus.close().catch(() => {})
      log.info('reconciler stopped')
      resolveDone()
    })()
    return stopping
  }
  if (opts.handleSignals) {
    const onSignal = (sig: string) => {
      log.info({ signal: sig }, 'signal received')
      void stop().then(() => process.exit(0))
    }
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
  }

  return {
    id,
    httpUrl: admin?.url,
    status: () => status,
    isLeader: () => lease?.isLeader() ?? false,
    trigger: () => (loop as NonNullable<typeof loop>).trigger(),
    stop,
    done,
    get lastReport() {
      return lastReport
    },
  } as RunningReconciler
}

/** Reads and loads the `--signing-key` file; the error names the file, never its content. */
async function readSigningKey(file: string): Promise<TableSigner> {
  const text = await readFile(file, 'utf8')
  try {
    return loadSigningKey(text)
  } catch (err) {
    throw new SigningKeyError(`--signing-key ${file}: ${(err as Error).message}`)
  }
}
