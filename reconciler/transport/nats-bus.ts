import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream'
import { type KV, Kvm, type KvOptions } from '@nats-io/kv'
import { type ObjectStore, Objm } from '@nats-io/obj'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import type { Logger } from 'pino'
import type { NatsAuthOptions } from '../../lib/nats-connect.js'
import {
  Bucket,
  EVENTS_DUPLICATE_WINDOW_NS,
  EVENTS_MAX_AGE_NS,
  EVENTS_STREAM,
  EVENTS_SUBJECTS,
  INSTANCES_TTL_MS,
  LEASES_TTL_MS,
  TABLE_BODIES_BUCKET,
  TABLES_HISTORY,
} from '../../schemas/subjects.js'
import { isStreamNotFound } from './nats-errors.js'

/**
 * The reconciler's NATS edge: one connection, its JetStream client/manager and the five KV buckets of
 * docs/design.md §3. Everything else in reconciler/transport takes a `Bus`.
 */
export interface Bus {
  nc: NatsConnection
  js: JetStreamClient
  jsm: JetStreamManager
  /** The buckets, bound by name (no server round trip); `ensureNatsLayout` creates the missing ones. */
  kv: { tables: KV; instances: KV; leases: KV; status: KV; ca: KV }
  /** Object store `zonegate-table-bodies` (bodies of tables too large for one message), opened on first use. */
  tableBodies(): Promise<ObjectStore>
  log: Logger
  /** Drains and closes the connection; safe to call twice. */
  close(): Promise<void>
}

export interface ConnectBusOptions {
  servers: string[]
  /** Connection name shown by the server (`zonegate-reconciler-<id>`). */
  name: string
  log: Logger
  /** Wait for the server when it is down at start (default true; the CLI sets false to fail fast). */
  waitOnFirstConnect?: boolean
  /** Reconnect forever by default (-1); the CLI passes 0. */
  maxReconnectAttempts?: number
  /** Timeout of JetStream API calls and publishes (ms, default 5000). */
  apiTimeoutMs?: number
  /** Credentials, TLS and inbox prefix (lib/nats-connect.ts `natsConnectOptions`). */
  auth?: NatsAuthOptions
  /** Timeout of the connection attempt (ms, default 5000). */
  connectTimeoutMs?: number
}

/**
 * Connects to NATS (v3 transport-node: reconnect forever every ~250 ms, wait on first connect unless told
 * otherwise) and binds the four buckets. Logs disconnect/reconnect at info under `component: nats`.
 * Rejects with the client's ConnectionError when `waitOnFirstConnect` is false and no server answers.
 */
export async function connectBus(opts: ConnectBusOptions): Promise<Bus> {
  const log = opts.log.child({ component: 'nats' })
  const nc = await connect({
    ...opts.auth,
    servers: opts.servers,
    name: opts.name,
    maxReconnectAttempts: opts.maxReconnectAttempts ?? -1,
    // reconnecting forever includes a refused token: a renewed --creds file is read again at each attempt
    ignoreAuthErrorAbort: (opts.maxReconnectAttempts ?? -1) === -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: opts.waitOnFirstConnect ?? true,
    timeout: opts.connectTimeoutMs ?? 5000,
  })
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect') log.info({ server: s.server }, `nats ${s.type}`)
    }
  })().catch(() => {})
  const timeout = opts.apiTimeoutMs ?? 5000
  const js = jetstream(nc, { timeout })
  const jsm = await jetstreamManager(nc, { timeout, checkAPI: false })
  const kvm = new Kvm(js)
  const [tables, instances, leases, status, ca] = await Promise.all([
    kvm.open(Bucket.Tables),
    kvm.open(Bucket.Instances),
    kvm.open(Bucket.Leases),
    kvm.open(Bucket.Status),
    kvm.open(Bucket.Ca),
  ])
  let closing: Promise<void> | undefined
  let bodies: Promise<ObjectStore> | undefined
  return {
    nc,
    js,
    jsm,
    kv: { tables, instances, leases, status, ca },
    tableBodies() {
      bodies ??= new Objm(js).open(TABLE_BODIES_BUCKET).catch((err: unknown) => {
        bodies = undefined
        throw err
      })
      return bodies
    },
    log,
    close() {
      closing ??= nc.isClosed() ? Promise.resolve() : nc.drain().catch(() => nc.close())
      return closing
    },
  }
}

/** Overrides of the docs/design.md §3 settings: TTLs for tests, `replicas` from `--replicas`. */
export interface LayoutOverrides {
  leasesTtlMs?: number
  instancesTtlMs?: number
  /** Replicas of every bucket and the stream; default `defaultReplicas(server info)` (3 in a cluster, else 1). */
  replicas?: number
}

/** What `ensureNatsLayout` found: names created now, and settings that differ from docs/design.md §3 on existing ones. */
export interface LayoutReport {
  created: string[]
  mismatches: string[]
}

/**
 * The replica count to ask for when `--replicas` is not given: 3 when the server says it is part of a cluster
 * (its INFO names one), else 1. Pure.
 */
export function defaultReplicas(info: { cluster?: string } | undefined): number {
  return info?.cluster ? 3 : 1
}

/** The wanted KV settings per bucket (docs/design.md §3). Pure. */
export function bucketSettings(o: LayoutOverrides = {}): Record<string, Partial<KvOptions>> {
  const replicas = o.replicas ?? 1
  return {
    [Bucket.Tables]: { history: TABLES_HISTORY, storage: StorageType.File, replicas },
    [Bucket.Instances]: { history: 1, ttl: o.instancesTtlMs ?? INSTANCES_TTL_MS, storage: StorageType.File, replicas },
    [Bucket.Leases]: { history: 1, ttl: o.leasesTtlMs ?? LEASES_TTL_MS, storage: StorageType.File, replicas },
    [Bucket.Status]: { history: 1, storage: StorageType.File, replicas },
    // Builtin mesh CA keys: read by the reconciler only (docs/mtls.md); kept across restarts.
    [Bucket.Ca]: { history: 1, storage: StorageType.File, replicas },
  }
}

/** The wanted config of stream ZONEGATE_EVENTS (docs/design.md §3). Pure. */
export function eventsStreamConfig(replicas = 1): Partial<StreamConfig> & { name: string } {
  return {
    name: EVENTS_STREAM,
    subjects: [EVENTS_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: EVENTS_MAX_AGE_NS,
    duplicate_window: EVENTS_DUPLICATE_WINDOW_NS,
    num_replicas: replicas,
  }
}

/** The mismatch line of a stream whose replica count differs from the one asked (names the fix). Pure. */
export function replicasMismatch(name: string, have: number, want: number): string {
  return `${name}: replicas ${have} (asked ${want}; \`zonegate nats migrate --replicas ${want}\` changes it)`
}

/**
 * Creates, if missing, the five KV buckets, the object store of large table bodies and stream ZONEGATE_EVENTS
 * with the settings of docs/design.md §3, and
 * rebinds `bus.kv` to the created buckets (direct get when available). Idempotent: existing buckets and
 * streams are left as they are; a setting that differs from docs/design.md §3 is logged (warn) and reported, never
 * changed (another process may depend on it). Rejects with the client's error when JetStream is unavailable.
 */
export async function ensureNatsLayout(bus: Bus, overrides: LayoutOverrides = {}): Promise<LayoutReport> {
  const report: LayoutReport = { created: [], mismatches: [] }
  const kvm = new Kvm(bus.js)
  const opened: Record<string, KV> = {}
  const replicas = overrides.replicas ?? defaultReplicas(bus.nc.info)
  for (const [name, want] of Object.entries(bucketSettings({ ...overrides, replicas }))) {
    const existed = await streamExists(bus, `KV_${name}`)
    opened[name] = await kvm.create(name, want)
    if (!existed) report.created.push(name)
    else {
      const info = await bus.jsm.streams.info(`KV_${name}`)
      const c = info.config
      if (c.max_msgs_per_subject !== want.history) report.mismatches.push(`${name}: history ${c.max_msgs_per_subject}`)
      const wantAge = (want.ttl ?? 0) * 1e6
      if ((c.max_age ?? 0) !== wantAge) report.mismatches.push(`${name}: ttl ${(c.max_age ?? 0) / 1e6}ms`)
      if (c.storage !== want.storage) report.mismatches.push(`${name}: storage ${c.storage}`)
      if ((c.num_replicas || 1) !== replicas)
        report.mismatches.push(replicasMismatch(name, c.num_replicas || 1, replicas))
    }
  }
  bus.kv = {
    tables: opened[Bucket.Tables] as KV,
    instances: opened[Bucket.Instances] as KV,
    leases: opened[Bucket.Leases] as KV,
    status: opened[Bucket.Status] as KV,
    ca: opened[Bucket.Ca] as KV,
  }
  const objStream = `OBJ_${TABLE_BODIES_BUCKET}`
  if (!(await streamExists(bus, objStream))) {
    await new Objm(bus.js).create(TABLE_BODIES_BUCKET, {
      replicas,
      storage: StorageType.File,
      description: 'zonegate: bodies of zone tables too large for one NATS message',
    })
    report.created.push(TABLE_BODIES_BUCKET)
  } else {
    const c = (await bus.jsm.streams.info(objStream)).config
    if ((c.num_replicas || 1) !== replicas)
      report.mismatches.push(replicasMismatch(TABLE_BODIES_BUCKET, c.num_replicas || 1, replicas))
  }
  const want = eventsStreamConfig(replicas)
  if (!(await streamExists(bus, EVENTS_STREAM))) {
    await bus.jsm.streams.add(want)
    report.created.push(EVENTS_STREAM)
  } else {
    const c = (await bus.jsm.streams.info(EVENTS_STREAM)).config
    if (!c.subjects?.includes(EVENTS_SUBJECTS)) report.mismatches.push(`${EVENTS_STREAM}: subjects ${c.subjects}`)
    if (c.max_age !== want.max_age) report.mismatches.push(`${EVENTS_STREAM}: max_age ${c.max_age}`)
    if (c.duplicate_window !== want.duplicate_window)
      report.mismatches.push(`${EVENTS_STREAM}: duplicate_window ${c.duplicate_window}`)
    if ((c.num_replicas || 1) !== replicas)
      report.mismatches.push(replicasMismatch(EVENTS_STREAM, c.num_replicas || 1, replicas))
  }
  if (report.created.length > 0) bus.log.info({ created: report.created }, 'nats layout created')
  if (report.mismatches.length > 0)
    bus.log.warn({ mismatches: report.mismatches }, 'nats layout differs from docs/design.md §3; left unchanged')
  return report
}

async function streamExists(bus: Bus, name: string): Promise<boolean> {
  try {
    await bus.jsm.streams.info(name)
    return true
  } catch (err) {
    if (isStreamNotFound(err)) return false
    throw err
  }
}

/** The buckets whose loss the reconciler must act on (republish, new CA, retake the lease). */
export const LAYOUT_EPOCH_BUCKETS = [Bucket.Tables, Bucket.Leases, Bucket.Ca] as const

/**
 * The creation time of each of LAYOUT_EPOCH_BUCKETS' streams (absent when missing). A stream recreated after a
 * wiped store has a new creation time, whoever recreated it (the egress uses the same test). Rejects on
 * NATS errors other than "stream not found".
 */
export async function bucketEpochs(bus: Bus): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const b of LAYOUT_EPOCH_BUCKETS) {
    try {
      out[b] = String((await bus.jsm.streams.info(`KV_${b}`)).created)
    } catch (err) {
      if (!isStreamNotFound(err)) throw err
    }
  }
  return out
}
