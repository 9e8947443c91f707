import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import type { ZoneTable } from '../../schemas/table.js'
import { CompactZoneTable, holdCompact, tableJsonParts } from '../core/compact-table.js'
import type { EgressContext } from '../lifecycle/egress-context.js'
import type { ProxySnapshot } from '../workers/protocol.js'
import type { EgressMetrics } from './metrics.js'

/**
 * Envoy-style admin HTTP for one egress (bind it to 127.0.0.1):
 * - `GET /ready`: 200 `LIVE` while serving (also `applying`, `reloading`, `degraded`), else 503 with the state
 *   (`connecting`, `awaitingTable`: with `--admin` the server is up from the start, like Envoy's);
 * - `GET /server_info`: version, state, zone/name/instance, start time and uptime (Envoy's path);
 * - `GET /config_dump`: the served table envelope with generation, revision, digest and lifecycle state (private
 *   keys of upstream TLS redacted) and the mesh identities (certificates' validity; never the egress's key);
 * - `GET /stats`: counters as JSON; `GET /stats/prometheus`: the egress's own prom-client registry;
 * - `POST /drain_listeners`: stop accepting, let open connections finish (the process stays up);
 * - `POST /quitquitquit`: drain like SIGTERM, then exit.
 */
export interface AdminDeps {
  /** The lifecycle state name and context, read per request. */
  state(): { value: string; context: EgressContext }
  /** The data plane's counters (with `--workers`, summed over the workers when asked). */
  snapshot(): Promise<ProxySnapshot>
  /** Where the proxy listens (undefined before it does). */
  listen(): AddressInfo | undefined
  metrics: EgressMetrics
  /** The Prometheus text; default: `metrics.registry` (with `--workers`: the primary's and workers' summed). */
  scrape?(): Promise<{ text: string; contentType: string }>
  /** With `--workers`: one entry per worker (slot, pid, generation, restarts), in /stats and /config_dump. */
  workers?(): unknown
  /** Drains; `exit` ends the process afterwards. */
  drain(exit: boolean): void
  log: Logger
  /** NATS mode: the subscriber's state (connected, KV revision…), shown under `nats` in /config_dump. */
  nats?(): unknown
  /** Version, start time, uptime… for `/server_info` (with the state and identity added here). */
  serverInfo?(): Record<string, unknown>
  /** The egress identities per mesh (no key material), shown under `identity` in /config_dump. */
  identity?(): unknown
}

export const READY_STATES: ReadonlySet<string> = new Set(['serving', 'applying', 'reloading', 'degraded'])

/** What replaces a private key in /config_dump. */
export const REDACTED = '[redacted]'

/**
 * The table as shown by /config_dump: every upstream `tls.clientKey` replaced by `[redacted]` (the original
 * is not modified). Pure.
 */
export function redactTable(table: ZoneTable): ZoneTable {
  // a compact table knows whether it holds a key without reading its routes
  if (table instanceof CompactZoneTable && !table.compact.clientKeys) return table
  if (!table.routes.some((r) => r.upstreams.some((u) => u.tls?.clientKey !== undefined))) return table
  return {
    ...table,
    routes: table.routes.map((r) => ({
      ...r,
      upstreams: r.upstreams.map((u) =>
        u.tls?.clientKey === undefined ? u : { ...u, tls: { ...u.tls, clientKey: REDACTED } },
      ),
    })),
  }
}

/** Starts the admin server on host:port; resolves with the bound address and a close function. */
export async function startAdminServer(
  deps: AdminDeps,
  host: string,
  port: number,
): Promise<{ address: AddressInfo; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    handle(deps, req, res).catch((err: unknown) => {
      deps.log.error({ err }, 'admin request failed')
      if (!res.headersSent) send(res, 500, { error: 'internal error' })
    })
  })
  server.keepAliveTimeout = 1000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

async function handle(deps: AdminDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]
  const route = `${req.method} ${path}`
  switch (route) {
    case 'GET /ready': {
      const { value } = deps.state()
      const ready = READY_STATES.has(value)
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'LIVE\n' : `${value}\n`)
      return
    }
    case 'GET /server_info': {
      const { value, context } = deps.state()
      send(res, 200, {
        ...deps.serverInfo?.(),
        state: value,
        zone: context.table?.zone ?? context.zone ?? null,
        name: context.name ?? null,
        instance: context.instance,
      })
      return
    }
    case 'GET /config_dump':
      sendConfigDump(res, configDump(deps))
      return
    case 'GET /stats':
      send(res, 200, statsJson(deps, await deps.snapshot()))
      return
    case 'GET /stats/prometheus': {
      const { text, contentType } = deps.scrape
        ? await deps.scrape()
        : { text: await deps.metrics.registry.metrics(), contentType: deps.metrics.registry.contentType }
      res.writeHead(200, { 'content-type': contentType }).end(text)
      return
    }
    case 'POST /drain_listeners':
      deps.drain(false)
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK\n')
      return
    case 'POST /quitquitquit':
      deps.drain(true)
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK\n')
      return
  }
  const known = [
    '/ready',
    '/server_info',
    '/config_dump',
    '/stats',
    '/stats/prometheus',
    '/drain_listeners',
    '/quitquitquit',
  ]
  if (known.includes(path ?? '')) send(res, 405, { error: `method ${req.method} not allowed on ${path}` })
  else send(res, 404, { error: `no such endpoint ${path}`, endpoints: known })
}

/** The /config_dump document. */
export function configDump(deps: Pick<AdminDeps, 'state' | 'listen' | 'nats' | 'identity' | 'workers'>) {
  const { value, context } = deps.state()
  const table = context.table
  const addr = deps.listen()
  return {
    state: value,
    zone: table?.zone ?? context.zone ?? null,
    name: context.name ?? null,
    instance: context.instance,
    listen: addr ? `${addr.address}:${addr.port}` : null,
    generation: table?.generation ?? null,
    revision: table?.revision ?? null,
    digest: table?.digest ?? null,
    lastSwap: context.lastSwap ?? null,
    lastRejection: context.lastRejection ?? null,
    ...(deps.nats ? { nats: deps.nats() } : {}),
    ...(deps.identity ? { identity: deps.identity() } : {}),
    ...(deps.workers ? { workers: deps.workers() } : {}),
    table: table ? redactTable(table) : null,
  }
}

function statsJson(deps: AdminDeps, s: ProxySnapshot) {
  const { value, context } = deps.state()
  return {
    state: value,
    generation: context.table?.generation ?? null,
    digest: context.table?.digest ?? null,
    connections: {
      accepted: s.accepted,
      active: s.active,
      routed: s.routed,
      mtlsTerminated: s.terminated,
      rejected: s.rejected,
      closedAfterRouteRemoval: s.drainedClosed,
    },
    bytes: { in: s.bytesIn, out: s.bytesOut },
    routes: s.routes,
    upstreamConnectFailures: s.connectFailures,
    tables: { swaps: context.swaps, rejections: context.rejections, lastRejection: context.lastRejection ?? null },
    ...(deps.workers ? { workers: deps.workers() } : {}),
  }
}

/**
 * Writes /config_dump. A compact table (decision 012: every NATS table, and `--static` files) is written as its
 * routes' JSON bytes as held (`tableJsonParts`, as the state file is), not parsed route by route and serialised
 * again, which for 100,000 routes held the event loop — the proxy's with `--workers 1` — for a large part of a
 * second per request. The rest of the document is indented as every admin answer; the routes are on one line. The
 * table is held (`holdCompact`) until the response is closed.
 */
function sendConfigDump(res: ServerResponse, dump: ReturnType<typeof configDump>): void {
  const table = dump.table
  if (!(table instanceof CompactZoneTable)) {
    send(res, 200, dump)
    return
  }
  const head = JSON.stringify({ ...dump, table: null }, null, 2)
  const at = head.lastIndexOf('"table": null')
  // the socket writes from the table's buffer after this returns: a release of the table (replaced meanwhile)
  // waits until the response is done
  const letGo = holdCompact(table.compact)
  res.once('close', letGo)
  res.writeHead(200, { 'content-type': 'application/json' })
  res.write(head.slice(0, at + '"table": '.length))
  for (const part of tableJsonParts(table)) res.write(part)
  res.end(`${head.slice(at + '"table": null'.length)}\n`)
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`)
}
