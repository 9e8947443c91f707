import { NoRespondersError, RequestError, TimeoutError } from '@nats-io/nats-core'
import { connect, type Subscription } from '@nats-io/transport-node'
import type { NatsAuthOptions } from '../../lib/nats-connect.js'
import type { ReconcileReply } from '../../schemas/events.js'
import { decodeEvent, decodeReconcileReply, decodeReconcileRequest } from '../../schemas/messages.js'
import { RECONCILE_SUBJECT } from '../../schemas/subjects.js'
import { ReconcileError } from '../core/errors.js'
import type { Bus } from './nats-bus.js'

/**
 * "Reconcile now" over core NATS request/reply on `zonegate.cmd.reconcile` (docs/design.md §3): the active
 * reconciler serves it in queue group `zonegate-reconciler` (so one replies even if several subscribe), the
 * CLI asks with `requestReconcile`. Standbys must not serve: call `serveReconcileRequests` when the lease is
 * acquired and `stop()` when it is lost.
 */

export const RECONCILE_QUEUE = 'zonegate-reconciler'

/** A serving subscription. */
export interface ReconcileServer {
  /** Unsubscribes (no more requests are taken; a request being handled still gets its reply). */
  stop(): Promise<void>
}

/**
 * Subscribes to `zonegate.cmd.reconcile` in queue group `zonegate-reconciler`. Each request runs `handler`
 * (which should trigger or join a pass and resolve to the revision it resolved) and replies with its JSON
 * `ReconcileReply`; a handler that throws replies `{ ok: false, error }`. Requests are handled one at a
 * time in arrival order by the subscription iterator, so a burst queues behind the pass in flight.
 */
export function serveReconcileRequests(bus: Bus, handler: () => Promise<ReconcileReply>): ReconcileServer {
  const log = bus.log.child({ component: 'reconcile-requests' })
  const sub: Subscription = bus.nc.subscribe(RECONCILE_SUBJECT, { queue: RECONCILE_QUEUE })
  const done = (async () => {
    for await (const m of sub) {
      let reply: ReconcileReply
      const request = decodeReconcileRequest(m.data)
      if (!request.ok) {
        // A malformed request triggers nothing.
        log.warn({ problem: request.problem }, 'reconcile request refused')
        if (m.reply) m.respond(JSON.stringify({ ok: false, error: `invalid request: ${request.problem}` }))
        continue
      }
      try {
        reply = await handler()
      } catch (err) {
        log.error({ err }, 'reconcile request failed')
        reply = { ok: false, error: err instanceof Error ? err.message : String(err) }
      }
      if (m.reply) m.respond(JSON.stringify(reply))
    }
  })().catch((err) => log.error({ err }, 'reconcile request subscription ended'))
  return {
    async stop() {
      if (!sub.isClosed()) sub.unsubscribe()
      await done
    },
  }
}

/** No reconciler subscribed to `zonegate.cmd.reconcile` (none running, or none holds the lease). */
export class NoReconciler extends ReconcileError {
  readonly code = 'NoReconciler'
  constructor(options?: ErrorOptions) {
    super('no reconciler is answering on zonegate.cmd.reconcile (is `zonegate reconciler` running?)', options)
  }
}

/** A reconciler took the request but did not reply within the timeout. */
export class ReconcileTimeout extends ReconcileError {
  readonly code = 'ReconcileTimeout'
  constructor(
    readonly timeoutMs: number,
    options?: ErrorOptions,
  ) {
    super(`the reconciler did not reply within ${timeoutMs} ms`, options)
  }
}

/** NATS could not be reached at all. */
export class NatsUnreachable extends ReconcileError {
  readonly code = 'NatsUnreachable'
  constructor(
    readonly servers: string[],
    options?: ErrorOptions,
  ) {
    super(`cannot connect to NATS at ${servers.join(', ')}`, options)
  }
}

function isNoResponders(err: unknown): boolean {
  if (err instanceof NoRespondersError) return true
  if (err instanceof RequestError) return err.isNoResponders()
  return false
}

function isTimeout(err: unknown): boolean {
  return err instanceof TimeoutError || (err instanceof Error && err.cause instanceof TimeoutError)
}

/**
 * Connects (no retry), sends one reconcile request and returns the reply. Throws NatsUnreachable when no
 * server accepts the connection, NoReconciler when nobody serves the subject (fails fast), ReconcileTimeout
 * when no reply comes within `timeoutMs`. The connection is closed in every case. `onCommitEvent` receives the
 * commit events (`zonegate.events.commit.>`) seen while waiting, so the CLI can say what it waits for.
 */
export async function requestReconcile(
  servers: string[],
  timeoutMs: number,
  onCommitEvent?: (event: unknown) => void,
  auth: NatsAuthOptions = {},
): Promise<ReconcileReply> {
  const { natsServersAnswering, connectBudgetMs } = await import('../../lib/nats-probe.js')
  const answering = await natsServersAnswering(servers, connectBudgetMs(timeoutMs))
  const nc = await connect({
    ...auth,
    servers: answering,
    name: 'zonegate-cli',
    maxReconnectAttempts: 0,
    waitOnFirstConnect: false,
    timeout: Math.min(timeoutMs, 5000),
  }).catch((err: unknown) => {
    throw new NatsUnreachable(servers, { cause: err })
  })
  // Progress while waiting: the commit events the pass emits (core subscription; nothing is stored).
  const progress = onCommitEvent ? nc.subscribe('zonegate.events.commit.>') : undefined
  if (progress && onCommitEvent)
    void (async () => {
      for await (const m of progress) {
        const decoded = decodeEvent(m.data)
        if (decoded.ok) onCommitEvent(decoded.value) // anything else is not ours to show
      }
    })().catch(() => {}) // a token without the right to subscribe: no progress lines, the request still runs
  try {
    const m = await nc.request(RECONCILE_SUBJECT, JSON.stringify({ requestedAt: new Date().toISOString() }), {
      timeout: timeoutMs,
    })
    const reply = decodeReconcileReply(m.data)
    if (!reply.ok) throw new Error(`invalid reply on ${RECONCILE_SUBJECT}: ${reply.problem}`)
    return reply.value
  } catch (err) {
    if (isNoResponders(err)) throw new NoReconciler({ cause: err })
    if (isTimeout(err)) throw new ReconcileTimeout(timeoutMs, { cause: err })
    throw err
  } finally {
    await nc.close().catch(() => {})
  }
}
