import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { Counter, Histogram, Registry } from 'prom-client'
import type { ReconcilerStatus } from '../../schemas/status.js'
import { verifyHubSignature } from '../triggers.js'

/**
 * The reconciler's admin HTTP server:
 * - `GET /healthz` — 200 while the process runs;
 * - `GET /readyz` — 200 once the first pass finished and the bus is connected, else 503;
 * - `GET /status` — the ReconcilerStatus as JSON (schemas/status.ts);
 * - `GET /metrics` — Prometheus text from the reconciler's own registry;
 * - `POST /hooks/git` — GitHub-style push webhook: HMAC-SHA256 `X-Hub-Signature-256` over the raw body with the
 *   secret of `--webhook-secret-file`; a bad or missing signature is 401 and triggers nothing; without a secret
 *   the hook is 403 (never unauthenticated). A GitHub `ping` is 200 and triggers nothing; other events are 202.
 */

/** The reconciler's metrics, on a registry of its own (no global default registry). */
export interface ReconcilerMetrics {
  registry: Registry
  passes: Counter<'result'>
  passDuration: Histogram<'result'>
  publishes: Counter<'zone'>
  webhooks: Counter<'outcome'>
}

/** Creates the registry and the metrics. */
export function createReconcilerMetrics(): ReconcilerMetrics {
  const registry = new Registry()
  return {
    registry,
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
      help: 'POST /hooks/git requests by outcome (accepted, ping, unauthorized, disabled)',
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
  /** Webhook secret; undefined disables the hook (403). */
  webhookSecret?: Buffer
  /** Called for each authenticated push. */
  onWebhook(): void
}

export interface AdminServer {
  /** `http://host:port` as bound (port 0 gives a random port). */
  url: string
  port: number
  close(): Promise<void>
}

const MAX_BODY = 1 << 20

function send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body, null, 2)}\n`
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) {
        resolve(undefined)
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** Starts the server; rejects if the address cannot be bound. */
export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const log = opts.log
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    if (req.method === 'POST' && path === '/hooks/git') {
      const body = await readBody(req)
      if (!body) return send(res, 413, { error: 'body too large' })
      if (!opts.webhookSecret) {
        opts.metrics.webhooks.inc({ outcome: 'disabled' })
        return send(res, 403, { error: 'webhook disabled: start the reconciler with --webhook-secret-file' })
      }
      const sig = req.headers['x-hub-signature-256']
      if (!verifyHubSignature(opts.webhookSecret, body, Array.isArray(sig) ? sig[0] : sig)) {
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
      case '/readyz':
        return opts.ready() ? send(res, 200, 'ready\n', 'text/plain') : send(res, 503, 'not ready\n', 'text/plain')
      case '/status':
        return send(res, 200, opts.status())
      case '/metrics':
        return send(res, 200, await opts.metrics.registry.metrics(), opts.metrics.registry.contentType)
      default:
        return send(res, 404, { error: 'not found' })
    }
  }
  const server = http.createServer((req, res) => {
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
