import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream'
import { type KV, type KvEntry, Kvm } from '@nats-io/kv'
import { type ObjectStore, Objm } from '@nats-io/obj'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import type { Logger } from 'pino'
import type { NatsAuthOptions } from '../../lib/nats-connect.js'
import { type BackoffPolicy, backoffMs } from '../../schemas/backoff.js'
import type { RolloutAppliedEvent, RolloutRejectedEvent } from '../../schemas/events.js'
import { verifyTableHeadSignature } from '../../schemas/signing.js'
import { Bucket, instanceKey, tableKey } from '../../schemas/subjects.js'
import type { ZoneTable } from '../../schemas/table.js'
import { isTableHead, type TableHead, validateTableHead } from '../../schemas/table-transport.js'
import { admittedValue } from '../core/admission.js'
import { type Heartbeat, type HeartbeatSource, startHeartbeat } from './heartbeat.js'
import { OrderedSender } from './ordered-sender.js'
import { appliedEvent, type BuiltInstanceEvent, rejectedEvent } from './rollout-events.js'
import { saveTable } from './state-store.js'
import type { TableAdmitter } from './table-admitter.js'

/**
 * The egress's NATS edge (docs/design.md §3–4), loaded only in NATS mode. It connects (retrying while no server
 * answers, then reconnecting forever), reads the zone's table with a **direct get** (bucket opened with
 * `allow_direct`), then **watches the one key** `<zone>.table` from the next KV revision. The watch is
 * supervised: it is recreated from the last revision after every reconnect and on any error, and the key is
 * read again first, because on nats-server 2.9 a v3 watcher stalls silently when the server lost its store
 * (docs/egress.md, "Updates"). Values whose KV revision is not above the last one handled are ignored; a
 * recreated bucket (new `created` time) resets that revision. Tables go to the lifecycle as
 * `table.received {source: 'nats'}`; a DEL/PURGE of the key as `table.removed` (keep serving; accept a
 * lower generation next). It also heartbeats, publishes `applied`/`rejected`, and saves applied tables to
 * `--state-dir`.
 */

/** Events the subscriber sends into the lifecycle machine. */
export type BusEvent =
  | { type: 'table.received'; table: unknown; source: 'nats' }
  | { type: 'table.removed'; reason: string; generationsRestart?: boolean }
  | { type: 'bus.lost' }
  | { type: 'bus.restored' }

export interface NatsSubscriberOptions {
  servers: string[]
  /** Credentials, TLS and inbox prefix (lib/nats-connect.ts); a zone token allows only its own inbox. */
  auth?: NatsAuthOptions
  zone: string
  egress: string
  instance: string
  log: Logger
  send(event: BusEvent): void
  heartbeat: HeartbeatSource
  heartbeatMs?: number
  /** Period of the watch liveness check (default WATCH_CHECK_MS). */
  watchCheckMs?: number
  stateDir?: string
  /** `--trusted-key`: a large table's head must be signed by one of them before its body is fetched. */
  trustedKeys?: readonly string[]
  /** Called once, at the first connection. */
  onConnected?(): void
  /** Where tables are admitted (a worker thread): every table value goes through it before the lifecycle. */
  admitter: TableAdmitter
}

/** The NATS part of `/config_dump`. */
export interface NatsState {
  connected: boolean
  everConnected: boolean
  server: string | null
  key: string
  /** KV revision of the last value of the key handled (applied, rejected or deleted). */
  kvRevision: number
  /** Set while the zone's key is deleted in KV (the last table keeps serving). */
  zoneRemoved: { kvRevision: number; time: string } | null
  watchRestarts: number
  lastError: string | null
  lastSave: string | null
  /** Rollout events waiting to be stored (NATS down or the stream missing). */
  eventsQueued: number
}

export interface NatsSubscriber {
  state(): NatsState
  /** Heartbeat now (state change). */
  beat(): void
  /** An applied table: save it, publish `applied`. */
  applied(table: ZoneTable, swapMs: number): void
  /** A rejected NATS table: publish `rejected`. */
  rejected(r: { reason: string; revision?: string; generation?: number; digest?: string }): void
  /** Request/reply (the egress identity's CSRs); rejects when not connected or without a reply in time. */
  request(subject: string, body: string, timeoutMs: number): Promise<string>
  /** Stops watching, removes the heartbeat key, closes the connection. */
  close(): Promise<void>
}

const RETRY_MS = 250
/** Table watch restarts: 250 ms doubling to 2 s (schemas/backoff.ts), no jitter. */
const WATCH_RETRY: BackoffPolicy = { baseMs: RETRY_MS, maxMs: 2000, jitter: 0 }
/** How often the table watch is checked for a missed update (see `checkWatch`). */
export const WATCH_CHECK_MS = 5000
/** How long a revision the watch has not delivered may stay missing before the watch counts as stalled. */
export const WATCH_CONFIRM_MS = 1000
/** Rollout events kept while NATS cannot store them (oldest dropped beyond). */
export const EVENT_QUEUE_MAX = 100
/** A head is a few hundred bytes; larger values are never read as one on the event loop. */
const MAX_HEAD_BYTES = 16 * 1024
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const text = (err: unknown) => (err instanceof Error ? err.message : String(err))

/** Starts the subscriber; never throws (every failure is logged and retried). */
export function startNatsSubscriber(o: NatsSubscriberOptions): NatsSubscriber {
  const log = o.log.child({ component: 'nats' })
  const key = tableKey(o.zone)
  const st: NatsState = {
    connected: false,
    everConnected: false,
    server: null,
    key,
    kvRevision: 0,
    zoneRemoved: null,
    watchRestarts: 0,
    lastError: null,
    lastSave: null,
    eventsQueued: 0,
  }
  let nc: NatsConnection | undefined
  let js: JetStreamClient | undefined
  let jsm: JetStreamManager | undefined
  let tables: KV | undefined
  let instances: KV | undefined
  let bucketCreated: string | undefined
  const bodyStores = new Map<string, ObjectStore>()
  /** Admissions (inline tables, and large-table bodies after their fetch) run one after the other, in KV order. */
  let bodyChain: Promise<void> = Promise.resolve()
  let closed = false
  let watcher: { stop(): void } | undefined
  let kick: (() => void) | undefined
  let kicked = false
  const heartbeat: Heartbeat = startHeartbeat(
    () => (st.connected ? instances : undefined),
    instanceKey(o.zone, o.egress, o.instance),
    o.heartbeat,
    log,
    o.heartbeatMs,
  )

  /** Handles one value of the key: skip old revisions, forward tables, report deletions. */
  const handle = (e: KvEntry) => {
    if (e.revision <= st.kvRevision) return
    st.kvRevision = e.revision
    if (e.operation === 'DEL' || e.operation === 'PURGE') {
      st.zoneRemoved = { kvRevision: e.revision, time: new Date().toISOString() }
      log.warn({ kvRevision: e.revision, op: e.operation }, 'zone table deleted in KV; the last table keeps serving')
      o.send({ type: 'table.removed', reason: `${e.operation} at KV revision ${e.revision}` })
      return
    }
    st.zoneRemoved = null
    const revision = e.revision
    // a head is small: read it here; anything else (an inline envelope, or garbage) is admitted off the loop
    let head: unknown
    if (e.value.length <= MAX_HEAD_BYTES) {
      try {
        head = e.json<unknown>()
      } catch {}
    }
    if (isTableHead(head)) {
      bodyChain = bodyChain.then(() => fetchBody(head, revision))
      return
    }
    const bytes = e.value
    bodyChain = bodyChain.then(() => admitInline(bytes, revision))
  }

  /** An inline table (the KV value is the envelope): admitted in the worker, then handed to the lifecycle. */
  const admitInline = async (bytes: Uint8Array, kvRevision: number) => {
    if (closed) return
    const { out, ms, thread } = await o.admitter.admit({
      kind: 'json',
      from: 'kv',
      bytes,
      zone: o.zone,
      trustedKeys: o.trustedKeys ?? [],
    })
    if (closed) return
    log.debug({ kvRevision, ms, thread }, 'table received')
    o.send({ type: 'table.received', table: admittedValue(out), source: 'nats' })
  }

  /**
   * A head (large table): fetch the body from the object store it names, check it against the head
   * (schemas/table-transport.ts) and hand the envelope to the lifecycle, which admits it like an inline table.
   * Skipped when a newer KV value arrived meanwhile. A malformed head or a body that does not match is
   * rejected (rollout `rejected` event, last table keeps serving); a NATS failure restarts the watch, which
   * reads the key again.
   */
  const fetchBody = async (value: unknown, kvRevision: number) => {
    if (closed || kvRevision !== st.kvRevision) return
    const problems = validateTableHead(value)
    const h = value as TableHead
    const about = {
      ...(typeof h.generation === 'number' ? { generation: h.generation } : {}),
      ...(typeof h.revision === 'string' ? { revision: h.revision } : {}),
      ...(typeof h.digest === 'string' ? { digest: h.digest } : {}),
    }
    const reject = (reason: string, list: string[]) => {
      st.lastError = `${reason}: ${list.join('; ')}`
      log.warn({ kvRevision, problems: list }, `large table rejected (${reason}); the last table keeps serving`)
      subscriber.rejected({ reason: `${reason}: ${list.slice(0, 3).join('; ')}`, ...about })
    }
    if (problems.length > 0) return reject('invalid-head', problems)
    if (o.trustedKeys && o.trustedKeys.length > 0) {
      // A forged head is refused before any body is fetched (the body's envelope is verified again at admission).
      const sig = verifyTableHeadSignature(h, o.trustedKeys)
      if (!sig.ok) return reject(sig.reason, [sig.problem])
    }
    let bytes: Uint8Array | null
    o.admitter.prepare() // the worker starts while the body is fetched
    const fetchStart = performance.now()
    log.debug({ kvRevision, object: h.object.name }, 'large table head received; fetching its body')
    try {
      if (!js) return
      let store = bodyStores.get(h.object.bucket)
      if (!store) {
        store = await new Objm(js).open(h.object.bucket)
        bodyStores.set(h.object.bucket, store)
      }
      bytes = await store.getBlob(h.object.name)
    } catch (err) {
      st.lastError = text(err)
      log.warn({ err, kvRevision }, 'large table body not fetched; retrying')
      if (kvRevision === st.kvRevision) {
        st.kvRevision = kvRevision - 1 // read the key again when the watch restarts (not at once: no tight loop)
        setTimeout(() => {
          if (!closed && st.kvRevision === kvRevision - 1) restartWatch()
        }, 1000).unref()
      }
      return
    }
    if (kvRevision !== st.kvRevision) return
    if (!bytes) return reject('body-missing', [`${h.object.bucket}/${h.object.name} not found`])
    const admitStart = performance.now()
    const { out, ms, thread, phases } = await o.admitter.admit({
      kind: 'body',
      head: h,
      bytes,
      zone: o.zone,
      trustedKeys: o.trustedKeys ?? [],
    })
    if (closed || kvRevision !== st.kvRevision) return
    if (!out.ok && out.stage === 'body') return reject('body-mismatch', out.problems)
    log.debug(
      { kvRevision, bytes: h.object.storedSize, fetchMs: Math.round(admitStart - fetchStart), ms, thread, phases },
      'large table received',
    )
    o.send({ type: 'table.received', table: admittedValue(out), source: 'nats' })
  }

  /** Reads the key (direct get) and (re)creates the watch from the next revision; returns when it ends. */
  const syncOnce = async () => {
    if (!nc || !js || !jsm) return
    tables ??= await new Kvm(js).open(Bucket.Tables, { allow_direct: true })
    instances ??= await new Kvm(js).open(Bucket.Instances)
    const info = await jsm.streams.info(`KV_${Bucket.Tables}`)
    const created = String(info.created)
    if (bucketCreated !== undefined && created !== bucketCreated) {
      // The server lost its store (or the bucket was recreated): revisions restart, and so may generations.
      log.warn({ created }, 'tables bucket was recreated; resyncing from scratch')
      st.kvRevision = 0
      o.send({ type: 'table.removed', reason: 'tables bucket recreated', generationsRestart: true })
    }
    bucketCreated = created
    const entry = await tables.get(key)
    if (entry) handle(entry)
    else if (st.kvRevision === 0) {
      // Say which zones do have a table: a typo in --zone, or a zone without a ZoneEgress in Git, shows at once.
      // (a scoped zone token, recognisable by its own inbox prefix, may not list the bucket's keys: no hint then)
      const zones: string[] = []
      const listed = await (async () => {
        if (o.auth?.inboxPrefix !== undefined) throw new Error('scoped token')
        for await (const k of await tables!.keys()) if (k.endsWith('.table')) zones.push(k.slice(0, -'.table'.length))
      })().then(
        () => true,
        () => false,
      )
      const others = listed ? `; zones with a table: ${zones.join(', ') || 'none'}` : ''
      log.warn(
        listed ? { zones: zones.sort() } : {},
        `no table for zone "${o.zone}" in KV ${Bucket.Tables} yet${others}. ` +
          'Waiting for one: check --zone, and that the repository has a ZoneEgress in this zone',
      )
    }
    const w = await tables.watch({
      key,
      ...(st.kvRevision > 0 ? { resumeFromRevision: st.kvRevision + 1 } : {}),
    })
    watcher = w
    if (closed) w.stop()
    for await (const e of w) handle(e)
  }

  /** The supervisor: keeps one watch alive; any end or error → wait (or a reconnect kick) → again. */
  const supervise = async () => {
    let failures = 0
    while (!closed) {
      kicked = false
      try {
        await syncOnce()
        failures = 0
      } catch (err) {
        failures++
        st.lastError = text(err)
        log.debug({ err }, 'table watch failed; retrying')
      }
      watcher = undefined
      if (closed) break
      st.watchRestarts++
      if (kicked) continue
      // errors right after a server restart (JetStream still loading) are retried soon, then less often
      await new Promise<void>((r) => {
        kick = r
        setTimeout(r, backoffMs(failures + 1, WATCH_RETRY, Math.random)).unref()
      })
      kick = undefined
    }
  }

  /** Ends the current watch so the supervisor reads the key again and watches from the last revision. */
  const restartWatch = () => {
    kicked = true
    watcher?.stop()
    kick?.()
  }

  /**
   * The watch's liveness check, every `WATCH_CHECK_MS`: an ordered watcher whose stream leader moved to another
   * node can stay silent without an error while this connection never dropped (nats-server 2.9), and the egress
   * then misses a table for good. When the tables bucket changed since the last check (stream info, small), the
   * key is read with a direct get (any replica answers); a revision above the last one handled that is still
   * missing a second later (`WATCH_CONFIRM_MS`; a live watch delivers in milliseconds) means the watch stalled: it
   * is recreated (the key is read again first, so the table is taken at once even if the new watch is no better).
   * The server places the watch's consumer on any replica of the stream: when that node is lost, the watch is silent
   * and the client notices only after two missed idle heartbeats (about a minute), longer than a rollout timeout.
   */
  let checkedSeq = 0
  let suspect = 0
  const checkWatch = async () => {
    if (closed || !st.connected || !jsm || !tables || watcher === undefined) return
    if (suspect > 0 && st.kvRevision < suspect) {
      log.warn({ kvRevision: suspect, handled: st.kvRevision }, 'table watch missed an update; recreating it')
      suspect = 0
      restartWatch()
      return
    }
    suspect = 0
    const last = (await jsm.streams.info(`KV_${Bucket.Tables}`)).state.last_seq
    if (last <= checkedSeq) return
    checkedSeq = last
    const entry = await tables.get(key)
    if (entry && entry.revision > st.kvRevision) {
      suspect = entry.revision
      setTimeout(() => {
        checkWatch().catch((err: unknown) => log.debug({ err }, 'table watch check failed'))
      }, WATCH_CONFIRM_MS).unref()
    }
  }
  const watchCheck = setInterval(() => {
    checkWatch().catch((err: unknown) => log.debug({ err }, 'table watch check failed'))
  }, o.watchCheckMs ?? WATCH_CHECK_MS)
  watchCheck.unref()

  /**
   * Rollout events (`applied` / `rejected`) go through a bounded queue, sent in order (issue #12.4): an event
   * that cannot be stored (NATS down, the stream missing) stays queued and is retried every second and at once
   * on reconnect, so the reconciler still gets it (its msg id makes a retry stored once). Past
   * EVENT_QUEUE_MAX the oldest is dropped (logged): the heartbeat, which carries the served digest, stands in
   * for a lost `applied`.
   */
  type Built = BuiltInstanceEvent<RolloutAppliedEvent | RolloutRejectedEvent>
  const events = new OrderedSender<Built>({
    send: (built) => js!.publish(built.subject, JSON.stringify(built.payload), { msgID: built.msgId, timeout: 5000 }),
    canSend: () => js !== undefined && !closed,
    max: EVENT_QUEUE_MAX,
    retryMs: 1000,
    onError: (err, built, queued) =>
      log.warn({ err, subject: built.subject, queued }, 'rollout event not published; retrying'),
    onDrop: (dropped) =>
      log.warn({ subject: dropped.subject, max: EVENT_QUEUE_MAX }, 'rollout event queue full: oldest dropped'),
  })
  const publish = (built: Built) => events.push(built)

  const run = async () => {
    while (!closed && nc === undefined) {
      try {
        nc = await connect({
          ...o.auth,
          servers: o.servers,
          name: `zonegate-egress-${o.zone}-${o.instance}`,
          maxReconnectAttempts: -1,
          // a refused token (expired, revoked) is retried too: the last table keeps serving, and a token renewed
          // in the --creds file (read again at each reconnect) brings the egress back without a restart
          ignoreAuthErrorAbort: true,
          reconnectTimeWait: RETRY_MS,
          waitOnFirstConnect: false,
          timeout: 2000,
        })
      } catch (err) {
        // say it once per distinct cause (a refused token retries forever; the log must show why)
        if (text(err) !== st.lastError) log.warn({ err }, 'nats connect failed; retrying')
        st.lastError = text(err)
        await sleep(RETRY_MS)
      }
    }
    if (closed || !nc) {
      await nc?.close()
      return
    }
    const conn = nc
    js = jetstream(conn, { timeout: 5000 })
    jsm = await jetstreamManager(conn, { timeout: 5000, checkAPI: false })
    st.connected = true
    st.everConnected = true
    st.server = conn.getServer()
    log.info({ server: st.server }, 'nats connected')
    o.onConnected?.()
    o.send({ type: 'bus.restored' })
    void (async () => {
      for await (const s of conn.status()) {
        if (s.type === 'disconnect') {
          st.connected = false
          log.warn({ server: s.server }, 'nats lost; serving the last table')
          o.send({ type: 'bus.lost' })
        } else if (s.type === 'reconnect') {
          st.connected = true
          st.server = s.server
          log.info({ server: s.server }, 'nats restored; resyncing')
          o.send({ type: 'bus.restored' })
          restartWatch()
          heartbeat.beat()
          void events.flush()
        }
      }
    })().catch(() => {})
    heartbeat.beat()
    await supervise()
  }
  const running = run().catch((err: unknown) => log.error({ err }, 'nats subscriber failed'))

  const subscriber: NatsSubscriber = {
    state: () => ({ ...st, eventsQueued: events.length }),
    beat: () => heartbeat.beat(),
    applied(table, swapMs) {
      if (o.stateDir) {
        saveTable(o.stateDir, table).then(
          (path) => {
            st.lastSave = path
          },
          (err: unknown) => log.warn({ err }, 'table not saved to the state dir'),
        )
      }
      if (table.generation === undefined || table.revision === undefined) return
      void publish(
        appliedEvent({
          zone: o.zone,
          egress: o.egress,
          instance: o.instance,
          revision: table.revision,
          generation: table.generation,
          digest: table.digest,
          swapMs: Math.round(swapMs * 1000) / 1000,
          time: new Date(),
        }),
      )
    },
    rejected(r) {
      void publish(
        rejectedEvent({
          zone: o.zone,
          egress: o.egress,
          instance: o.instance,
          revision: r.revision ?? `kv:${key}@${st.kvRevision}`,
          reason: r.reason,
          ...(r.generation === undefined ? {} : { generation: r.generation }),
          ...(r.digest === undefined ? {} : { digest: r.digest }),
          time: new Date(),
        }),
      )
    },
    async request(subject, body, timeoutMs) {
      if (nc === undefined || !st.connected || closed) throw new Error('NATS not connected')
      const m = await nc.request(subject, body, { timeout: timeoutMs })
      return m.string()
    },
    async close() {
      closed = true
      clearInterval(watchCheck)
      events.close()
      restartWatch()
      await heartbeat.stop({ remove: st.connected })
      // drain only when connected (a drain while reconnecting would wait for the server), and not for long
      if (nc && st.connected) await Promise.race([nc.drain().catch(() => {}), sleep(1000)])
      await nc?.close().catch(() => {})
      await Promise.race([running, sleep(1000)])
      await o.admitter.close()
    },
  }
  return subscriber
}
