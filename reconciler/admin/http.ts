import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { processRegistry } from '../../lib/metrics.js'
import type { ReconcilerStatus } from '../../schemas/status.js'
import { verifyHubSignature } from '../triggers.js'
import { STATUS_PAGE_CSS, STATUS_PAGE_HTML, STATUS_PAGE_JS } from './status-page.js'

/**
 * The reconciler's admin HTTP server:
 * - `GET /` — the status page (status-page.ts; `/ui/app.js`, `/ui/app.css`, data from `GET /api/view`);
 * - `GET /healthz` — 200 while the process runs;
 * - `GET /ready` (and `/readyz`) — 200 once the first pass finished and the bus is connected, else 503;
 * - `GET /server_info` — version, id, start time (the egress's path conventions);
 * - `GET /status` — the ReconcilerStatus as JSON (schemas/status.ts);
 * - `GET /metrics` (and `/stats/prometheus`) — Prometheus text from the reconciler's own registry;
 * - `POST /hooks/git` — GitHub-style push webhook: HMAC-SHA256 `X-Hub-Signature-256` over the raw body with the
 *   secret of `--webhook-secret-file`, compared in constant time; a bad or missing signature is 401 and triggers
 *   nothing; without a secret the hook is 403 before any body is read (never unauthenticated), unless
 *   `--insecure-webhook` explicitly allows unsigned pushes. The body is bounded in size (`WEBHOOK_MAX_BODY`, 413,
 *   also for a `content-length` announcing more) and in time (`webhookBodyTimeoutMs`, 408); either closes the
 *   connection. A GitHub `ping` is 200 and triggers nothing; other events are 202.
 * The server also bounds headers (10 s) and whole requests (30 s), so a slow client cannot hold a socket.
 */

/** The reconciler's metrics, on a registry of its own (no global default registry). */
export interface ReconcilerMetrics {
  registry: Registry
  passes: Counter<'result'>
  passDuration: Histogram<'result'>
  publishes: Counter<'zone'>
  webhooks: Counter<'outcome'>
  /** Unix time (s) of the end of the last pass that applied or found nothing to change. */
  lastSuccess: Gauge
  /** From a commit's fetch to its `converged` event. */
  commitToConverged: Histogram
}

/** What the gauges read at scrape time. */
export interface ReconcilerProcessInfo {
  version: string
  ready(): boolean
  leader(): boolean
  natsConnected(): boolean
}

/**
 * Creates the registry and the metrics (Prometheus conventions: unit suffixes, `_total` counters, prom-client's
 * default process metrics, `zonegate_build_info`). Labels are bounded: `result` and `outcome` are fixed sets,
 * `zone` the zones in Git (docs/operations.md).
 */
export function createReconcilerMetrics(
  info: ReconcilerProcessInfo = {
    version: 'unknown',
    ready: () => false,
    leader: () => false,
    natsConnected: () => false,
  },
): ReconcilerMetrics {
  const { registry, registers } = processRegistry(info.version)
  const flag = (name: string, help: string, read: () => boolean) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read() ? 1 : 0)
      },
    })
  flag('zonegate_reconciler_ready', '1 while the Ready condition is True, else 0', info.ready)
  flag('zonegate_reconciler_leader', '1 on the active reconciler (lease holder), else 0', info.leader)
  flag('zonegate_reconciler_nats_connected', '1 while connected to NATS, else 0', info.natsConnected)
  return {
    registry,
    lastSuccess: new Gauge({
      name: 'zonegate_reconciler_last_success_timestamp_seconds',
      help: 'Unix time of the end of the last pass that applied a revision or found nothing to change',
      registers,
    }),
    commitToConverged: new Histogram({
      name: 'zonegate_reconciler_commit_to_converged_seconds',
      help: "Time from a commit's fetch to every changed zone being served by every live egress instance",
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    passes: new Counter({
      name: 'zonegate_reconciler_passes_total',
      help: 'Reconcile passes by result (applied, unchanged, invalid, failed, superseded, skipped)',
      labelNames: ['result'],
      registers: [registry],
    }),
    passDuration: new Histogram({
      name: 'zonegate_reconciler_pass_duration_seconds',
      help: 'Duration of reconcile passes',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    publishes: new Counter({
      name: 'zonegate_reconciler_zone_publishes_total',
      help: 'Zone tables written to KV zonegate-tables (changes and removals)',
      labelNames: ['zone'],
      registers: [registry],
    }),
    webhooks: new Counter({
      name: 'zonegate_reconciler_webhooks_total',
      help: 'POST /hooks/git requests by outcome (accepted, ping, unauthorized, disabled, too-large, too-slow, aborted)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
  }
}

export interface AdminServerOptions {
  host: string
  port: number
  log: Logger
  metrics: ReconcilerMetrics
  status(): ReconcilerStatus
  ready(): boolean
  /** Webhook secret; undefined disables the hook (403) unless `insecureWebhook`. */
  webhookSecret?: Buffer
  /** `--insecure-webhook`: without a secret, accept unsigned pushes (development only). */
  insecureWebhook?: boolean
  /** How long a webhook body may take to arrive (default 10 s); then 408 and the connection is closed. */
  webhookBodyTimeoutMs?: number
  /** Called for each authenticated push. */
  onWebhook(): void
  /** The status page's data (`GET /api/view`); the page is off without it. */
  view?(): Promise<unknown>
  /** Version, id, start time… for `GET /server_info`. */
  serverInfo?(): Record<string, unknown>
}

export interface AdminServer {
  /** `http://host:port` as bound (port 0 gives a random port). */
  url: string
  port: number
  close(): Promise<void>
}

/** Largest webhook body read (GitHub push payloads are a few KiB; zonegate does not even parse them). */
export const WEBHOOK_MAX_BODY = 1 << 20
const WEBHOOK_BODY_TIMEOUT_MS = 10_000

function send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body, null, 2)}\n`
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/**
 * Reads a request body of at most `WEBHOOK_MAX_BODY` bytes within `timeoutMs`: the body, or the HTTP status to
 * refuse with (413 too large — announced or sent —, 408 too slow, 400 aborted). Never rejects.
 */
function readBody(req: http.IncomingMessage, timeoutMs: number): Promise<Buffer | 400 | 408 | 413> {
  const announced = Number(req.headers['content-length'] ?? 0)
  if (announced > WEBHOOK_MAX_BODY) return Promise.resolve(413)
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let size = 0
    let settled = false
    const settle = (v: Buffer | 400 | 408 | 413) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.removeAllListeners('data')
      resolve(v)
    }
    const timer = setTimeout(() => settle(408), timeoutMs)
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > WEBHOOK_MAX_BODY) return settle(413)
      chunks.push(c)
    })
    req.on('end', () => settle(Buffer.concat(chunks)))
    req.on('error', () => settle(400))
    req.on('aborted', () => settle(400))
  })
}

/** Answers and closes the connection (the rest of the request is not read). */
function refuseAndClose(res: http.ServerResponse, status: number, error: string): void {
  res.setHeader('connection', 'close')
  send(res, status, { error })
  res.once('finish', () => res.req.socket.destroySoon())
}

/** Starts the server; rejects if the address cannot be bound. */
export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const log = opts.log
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    if (req.method === 'POST' && path === '/hooks/git') {
      if (!opts.webhookSecret && !opts.insecureWebhook) {
        opts.metrics.webhooks.inc({ outcome: 'disabled' })
        return refuseAndClose(res, 403, 'webhook disabled: start the reconciler with --webhook-secret-file')
      }
      const body = await readBody(req, opts.webhookBodyTimeoutMs ?? WEBHOOK_BODY_TIMEOUT_MS)
      if (typeof body === 'number') {
        opts.metrics.webhooks.inc({ outcome: body === 413 ? 'too-large' : body === 408 ? 'too-slow' : 'aborted' })
        log.warn(
          { remote: req.socket.remoteAddress, status: body },
          'webhook refused: body too large, too slow or aborted',
        )
        const why =
          body === 413 ? `body larger than ${WEBHOOK_MAX_BODY} bytes` : body === 408 ? 'body too slow' : 'aborted'
        return refuseAndClose(res, body, why)
      }
      const sig = req.headers['x-hub-signature-256']
      if (opts.webhookSecret && !verifyHubSignature(opts.webhookSecret, body, Array.isArray(sig) ? sig[0] : sig)) {
        opts.metrics.webhooks.inc({ outcome: 'unauthorized' })
        log.warn({ remote: req.socket.remoteAddress }, 'webhook refused: bad or missing X-Hub-Signature-256')
        return send(res, 401, { error: 'bad or missing X-Hub-Signature-256' })
      }
      if (req.headers['x-github-event'] === 'ping') {
        opts.metrics.webhooks.inc({ outcome: 'ping' })
        return send(res, 200, { ok: true, triggered: false })
      }
      opts.metrics.webhooks.inc({ outcome: 'accepted' })
      opts.onWebhook()
      return send(res, 202, { ok: true, triggered: true })
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' })
    switch (path) {
      case '/healthz':
        return send(res, 200, 'ok\n', 'text/plain')
      case '/ready':
      case '/readyz':
        return opts.ready() ? send(res, 200, 'ready\n', 'text/plain') : send(res, 503, 'not ready\n', 'text/plain')
      case '/server_info':
        return send(res, 200, { ...opts.serverInfo?.(), ready: opts.ready() })
      case '/':
      case '/ui/app.js':
      case '/ui/app.css':
      case '/api/view': {
        if (!opts.view) return send(res, 404, { error: 'status page off' })
        res.setHeader('content-security-policy', "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        res.setHeader('cache-control', 'no-store')
        if (path === '/') return send(res, 200, STATUS_PAGE_HTML, 'text/html; charset=utf-8')
        if (path === '/ui/app.js') return send(res, 200, STATUS_PAGE_JS, 'text/javascript; charset=utf-8')
        if (path === '/ui/app.css') return send(res, 200, STATUS_PAGE_CSS, 'text/css; charset=utf-8')
        return send(res, 200, await opts.view())
      }
      case '/status':
        return send(res, 200, opts.status())
      case '/metrics':
      case '/stats/prometheus':
        return send(res, 200, await opts.metrics.registry.metrics(), opts.metrics.registry.contentType)
      default:
        return send(res, 404, { error: 'not found' })
    }
  }
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
    handle(req, res).catch((err) => {
      log.error({ err }, 'admin request failed')
      if (!res.headersSent) send(res, 500, { error: 'internal error' })
      else res.end()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
