import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { jetstream } from '@nats-io/jetstream'
import { type KV, Kvm } from '@nats-io/kv'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { pino } from 'pino'
import { type ReconcilerOptions, type RunningReconciler, runReconciler } from '../../reconciler/main.js'
import type { ZonegateEvent } from '../../schemas/events.js'
import { Bucket, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { createGitRepo, type GitRepo } from './git-repo.js'
import { type NatsServer, startNatsServer } from './nats-server.js'

/**
 * The reconciler's test world: Kuma YAML fixtures, an in-process reconciler, KV probes, and a whole world (NATS,
 * a Git repository of the fixtures, a scratch folder, a probe that records every event) to start in one call.
 */

export const MESH = `type: Mesh
name: default
mtls:
  enabledBackend: ca-1
  backends:
    - name: ca-1
      type: builtin
routing:
  zoneEgress: true
`

/** A ZoneEgress of `zone` listening on 127.0.0.1:`port` (named `ze-<zone>` unless `name` is given). */
export const egressYaml = (zone: string, port: number, name = `ze-${zone}`) => `type: ZoneEgress
name: ${name}
zone: ${zone}
networking:
  address: 127.0.0.1
  port: ${port}
`

/** ZoneIngress `zi-b` of zone-b, advertised on 127.0.0.1:`advertisedPort`, offering one instance of `service`. */
export const ingressYaml = (advertisedPort: number, service = 'svc') => `type: ZoneIngress
name: zi-b
zone: zone-b
networking:
  address: 127.0.0.1
  port: 10011
  advertisedAddress: 127.0.0.1
  advertisedPort: ${advertisedPort}
availableServices:
  - mesh: default
    instances: 1
    tags:
      kuma.io/service: ${service}
`

/** An ExternalService; `zone` pins it to one zone's egress (kuma.io/zone). */
export const externalYaml = (name: string, address: string, zone?: string) => `type: ExternalService
name: ${name}
mesh: default
tags:
  kuma.io/service: ${name}
${zone ? `  kuma.io/zone: ${zone}\n` : ''}networking:
  address: ${address}
`

/** Three zones, one shared ExternalService and one pinned to each zone. */
export function baseFiles(): Record<string, string> {
  return {
    'meshes/default.yaml': MESH,
    'zones/zone-a.yaml': egressYaml('zone-a', 10002),
    'zones/zone-b.yaml': egressYaml('zone-b', 10012),
    'zones/zone-c.yaml': egressYaml('zone-c', 10022),
    'external/shared.yaml': externalYaml('shared', '127.0.0.1:18080'),
    'external/a-only.yaml': externalYaml('a-only', '127.0.0.1:18081', 'zone-a'),
    'external/b-only.yaml': externalYaml('b-only', '127.0.0.1:18082', 'zone-b'),
  }
}

/** A pino logger writing parsed objects into `lines` (and nothing to the console). */
export function captureLogger(lines: Record<string, unknown>[] = []) {
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l))
      cb()
    },
  })
  return { log: pino({ level: 'debug' }, stream), lines }
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, remove: () => rm(path, { recursive: true, force: true }) }
}

/** Runs a reconciler in-process with short timings (interval 60 s: tests trigger passes explicitly). */
export async function startReconciler(
  o: Omit<Partial<ReconcilerOptions>, 'nats'> & { repo: string; nats: string; cacheDir: string },
): Promise<RunningReconciler & { lines: Record<string, unknown>[] }> {
  const { log, lines } = captureLogger()
  const r = await runReconciler({
    branch: 'main',
    intervalMs: 60_000,
    allowEmpty: false,
    defaultZone: 'default',
    logger: log,
    retryPolicy: { baseMs: 100, maxMs: 1000, jitter: 0.1 },
    http: { host: '127.0.0.1', port: 0 },
    ...o,
    nats: [o.nats],
  })
  return Object.assign(r, { lines })
}

/** A plain NATS client for probing what the reconciler wrote. */
export async function probe(url: string): Promise<{ nc: NatsConnection; tables: KV; close(): Promise<void> }> {
  const nc = await connect({ servers: url })
  const tables = await new Kvm(jetstream(nc)).open(Bucket.Tables)
  return { nc, tables, close: () => nc.close() }
}

/** Every PUT/DEL of a zone's key in KV history (history 10). */
export async function tableHistory(tables: KV, zone: string): Promise<{ op: string; table?: PublishedZoneTable }[]> {
  const out: { op: string; table?: PublishedZoneTable }[] = []
  const it = await tables.history({ key: tableKey(zone) })
  for await (const e of it) out.push({ op: e.operation, table: e.operation === 'PUT' ? e.json() : undefined })
  return out
}

/** NATS, a Git repository, a scratch folder and a probe recording every event: what a reconciler test runs on. */
export interface ReconcilerWorld {
  nats: NatsServer
  repo: GitRepo
  /** Scratch folder (the reconciler's cache goes here). */
  dir: { path: string; remove(): Promise<void> }
  probe: Awaited<ReturnType<typeof probe>>
  /** Every event published on `zonegate.events.>` since the world started, in order. */
  events: ZonegateEvent[]
  /** The subject of each of `events`. */
  subjects: string[]
  stop(): Promise<void>
}

/**
 * Starts a world: a real nats-server (`natsConfig` appended to its config), a Git repository holding `files`
 * (default `baseFiles()`), a scratch folder named after `prefix`, and a probe subscribed to every event.
 */
export async function startReconcilerWorld(
  o: { prefix?: string; files?: Record<string, string>; natsConfig?: string } = {},
): Promise<ReconcilerWorld> {
  const nats = await startNatsServer(o.natsConfig ? { config: o.natsConfig } : {})
  const dir = await tempDir(o.prefix ?? 'zonegate-world-')
  const repo = await createGitRepo({ files: o.files ?? baseFiles() })
  const p = await probe(nats.url)
  const events: ZonegateEvent[] = []
  const subjects: string[] = []
  const sub = p.nc.subscribe('zonegate.events.>')
  void (async () => {
    for await (const m of sub) {
      subjects.push(m.subject)
      events.push(m.json<ZonegateEvent>())
    }
  })()
  return {
    nats,
    repo,
    dir,
    probe: p,
    events,
    subjects,
    stop: async () => {
      await p.close()
      await nats.stop()
      await repo.remove()
      await dir.remove()
    },
  }
}
