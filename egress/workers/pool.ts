import cluster, { type Worker } from 'node:cluster'
import { mkdtempSync, rmSync } from 'node:fs'
import { open, unlink } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { AggregatorRegistry, type Registry } from 'prom-client'
import type { ZoneTable } from '../../schemas/table.js'
import { CompactZoneTable, releaseCompact } from '../core/compact-table.js'
import type { MeshMaterial } from '../identity/egress-identity.js'
import {
  emptySnapshot,
  FILE_TABLE_MIN_BYTES,
  type FileTable,
  type FromWorker,
  fileTableOf,
  mergeSnapshots,
  type ProxySnapshot,
  type ToWorker,
  type WireTable,
  type WorkerSettings,
  wireTable,
} from './protocol.js'
import { addCounters, type MetricJson, metricsToSum, retireMetrics } from './sums.js'

/**
 * The primary's side of an egress with `--workers N` (docs/decisions/015-egress-workers.md): N data-plane
 * processes forked with the cluster module, sharing one listening socket whose accepts the kernel spreads
 * (`SCHED_NONE`: every worker waits on the same socket; no round robin through the primary). The primary
 * keeps everything else (NATS, admission, identities, the lifecycle, admin) and hands each worker the admitted
 * table in compact form. A table counts as applied (`setTable` resolves) only once every live worker has
 * swapped to it; a worker started later (a replacement for one that died) gets the current table and the mesh
 * identities before it listens, so no worker ever accepts on an older generation than the one reported.
 */

/** How long a worker may take to acknowledge a table before it is killed (and replaced with the current one). */
export const SWAP_ACK_TIMEOUT_MS = 10_000
/** How long a stats request waits for a worker (one that does not answer is left out of the sum). */
export const STATS_TIMEOUT_MS = 2000
/** Restart delay after a worker that ran less than `CRASH_WINDOW_MS` died: doubles from 250 ms up to 5 s. */
const CRASH_WINDOW_MS = 10_000
const MAX_RESTART_DELAY_MS = 5000

export interface PoolOptions {
  workers: number
  settings: WorkerSettings
  log: Logger
  /** The primary's own registry (process metrics, table metrics): scraped with the workers' and summed. */
  registry: Registry
}

interface Slot {
  slot: number
  worker: Worker | undefined
  pid: number | undefined
  /** Last table sequence sent (init or table message); 0: nothing sent yet (not started or restarted). */
  sent: number
  /** Last table sequence the worker says it routes on. */
  acked: number
  generation: number | null
  listening: boolean
  startedAt: number
  /** Quick deaths in a row (restart backoff). */
  crashes: number
  restarts: number
  /** Event-loop time of the worker's last swap, ms. */
  swapMs: number
  /** Its counters at the last stats request (null: none since it started). */
  last: ProxySnapshot | null
  /** Its registry at the last /stats/prometheus scrape (null: none since it started). */
  lastMetrics: MetricJson[] | null
  restartTimer: NodeJS.Timeout | undefined
}

/** Per-worker facts for /stats and /config_dump. */
export interface WorkerInfo {
  worker: number
  pid: number | null
  listening: boolean
  generation: number | null
  restarts: number
  lastSwapMs: number
  /** Connections accepted and open, at the last stats request (/stats asks first; /config_dump does not). */
  accepted: number | null
  active: number | null
}

type State = 'idle' | 'starting' | 'running' | 'draining' | 'closed'

/** One worker's answer to a stats request (`worker`: the process that answered, to leave out one that died since). */
interface StatsReply {
  slot: number
  worker: Worker
  snap: ProxySnapshot
  metrics?: MetricJson[]
}

/** The worker entry: the compiled .js next to this file, or the .ts source run through tsx (tests, benchmarks). */
function workerEntry(): { exec: string; execArgv: string[] } {
  const ts = import.meta.url.endsWith('.ts')
  const exec = fileURLToPath(new URL(`./worker.${ts ? 'ts' : 'js'}`, import.meta.url))
  return { exec, execArgv: ts ? [...process.execArgv, '--import', 'tsx'] : process.execArgv }
}

export class WorkerPool {
  private readonly slots: Slot[] = []
  private state: State = 'idle'
  private seq = 0
  private current: WireTable | undefined
  /**
   * `current`'s compact routes were built here (a table admitted on the event loop, `--static`), so the pool
   * releases them once replaced; a compact table's routes belong to whoever holds that table (the egress).
   */
  private ownsCurrent = false
  private readonly identities = new Map<string, MeshMaterial>()
  private listen: { host: string; port: number } | undefined
  private bound: AddressInfo | undefined
  private waiters: { seq: number; resolve(): void }[] = []
  private startWaiter: { resolve(a: AddressInfo): void; reject(e: Error): void } | undefined
  private statsId = 1
  private readonly statsPending = new Map<number, { waiting: Set<number>; replies: StatsReply[]; done(): void }>()
  private drainPending:
    | { waiting: Set<number>; destroyed: number; done(): void; stopping: Set<number>; open: number; stopped(): void }
    | undefined
  private lastSnapshot: ProxySnapshot = mergeSnapshots([])
  /** The counters of the workers that exited, as last seen (sums.ts): every later sum includes them. */
  private retiredSnapshot: ProxySnapshot = emptySnapshot()
  private retiredMetrics: MetricJson[] = []
  /** Private directory (0700) of the table files handed to the workers; made on first use, removed by close. */
  private fileDir: string | undefined
  /** Table messages go out in `seq` order, also when one waits for its file to be written. */
  private sendOrder: Promise<void> = Promise.resolve()

  constructor(private readonly o: PoolOptions) {
    for (let i = 1; i <= o.workers; i++)
      this.slots.push({
        slot: i,
        worker: undefined,
        pid: undefined,
        sent: 0,
        acked: 0,
        generation: null,
        listening: false,
        startedAt: 0,
        crashes: 0,
        restarts: 0,
        swapMs: 0,
        last: null,
        lastMetrics: null,
        restartTimer: undefined,
      })
  }

  get size(): number {
    return this.slots.length
  }

  /** Where the workers listen (from start to drain). */
  address(): AddressInfo | undefined {
    return this.state === 'running' ? this.bound : undefined
  }

  /** Open connections over all workers at the last stats request. */
  get activeConnections(): number {
    return this.lastSnapshot.active
  }

  /**
   * Forks the workers with `table` and waits until every one listens on `host:port` (the first bind happens in
   * the primary, on the first worker's request). Rejects with the bind error (EADDRINUSE…) or when a worker
   * dies before listening.
   */
  start(table: ZoneTable, listen: { host: string; port: number }): Promise<AddressInfo> {
    if (this.state !== 'idle') return Promise.reject(new Error(`worker pool already ${this.state}`))
    this.state = 'starting'
    this.listen = listen
    this.current = wireTable(table)
    this.ownsCurrent = !(table instanceof CompactZoneTable)
    this.seq = 1
    const { exec, execArgv } = workerEntry()
    // Frozen by the first setupPrimary: every worker accepts on the shared socket itself (the kernel picks one)
    cluster.schedulingPolicy = cluster.SCHED_NONE
    cluster.setupPrimary({ exec, execArgv, args: [], serialization: 'advanced' })
    const started = new Promise<AddressInfo>((resolve, reject) => {
      this.startWaiter = { resolve, reject }
    })
    for (const s of this.slots) this.fork(s)
    return started
  }

  /**
   * Hands `table` to every worker; resolves once each live worker has swapped to it (a worker that dies
   * meanwhile is left out: its replacement starts on the current table). A worker silent for
   * SWAP_ACK_TIMEOUT_MS is killed, for the same reason. Returns the slowest worker's swap time (event loop, ms).
   */
  async setTable(table: ZoneTable): Promise<number> {
    const wire = wireTable(table)
    const prev = this.ownsCurrent ? this.current : undefined
    this.current = wire
    this.ownsCurrent = !(table instanceof CompactZoneTable)
    const seq = ++this.seq
    const before = this.sendOrder
    let sent!: () => void
    this.sendOrder = new Promise((r) => (sent = r))
    // a large table is written once for all the workers (FileTable) instead of serialised into each channel
    const live = this.slots.filter((s) => s.worker !== undefined && s.sent !== 0).length
    const file = live > 0 ? await this.writeTableFile(wire, seq) : undefined
    await before
    for (const s of this.slots) {
      // s.sent ≥ seq: a worker started while the file was written got this table or a newer one in its init
      if (s.worker === undefined || s.sent === 0 || s.sent >= seq) continue
      this.send(s, file ? { t: 'table-file', seq, table: file } : { t: 'table', seq, table: wire })
      s.sent = seq
    }
    sent()
    const done = new Promise<void>((resolve) => this.waiters.push({ seq, resolve }))
    const timer = setTimeout(() => {
      for (const s of this.slots) {
        if (s.worker !== undefined && s.sent >= seq && s.acked < seq) {
          this.o.log.error({ worker: s.slot, pid: s.pid, seq }, 'worker did not take the table in time; killing it')
          s.worker.process.kill('SIGKILL')
        }
      }
    }, SWAP_ACK_TIMEOUT_MS)
    this.checkWaiters()
    await done
    clearTimeout(timer)
    // every live worker has read it (a worker started from now on gets the table through its channel)
    if (file !== undefined) await unlink(file.file).catch(() => {})
    // Every live worker has taken `wire` (so every message holding `prev` was serialised and sent), and a worker
    // started from now on gets `wire`: nothing reads `prev` any more.
    if (prev !== undefined) releaseCompact(prev.compact)
    return Math.max(0, ...this.slots.map((s) => (s.acked >= seq ? s.swapMs : 0)))
  }

  /** A mesh identity installed (or dropped: undefined) in the primary: every worker gets it before the next table. */
  identity(mesh: string, material: MeshMaterial | undefined): void {
    if (material === undefined) this.identities.delete(mesh)
    else this.identities.set(mesh, material)
    for (const s of this.slots)
      if (s.worker !== undefined && s.sent > 0) this.send(s, { t: 'identity', mesh, material: material ?? null })
  }

  /** Every live worker's counters (and, with `metrics`, its registry as JSON), within STATS_TIMEOUT_MS. */
  private collect(metrics: boolean): Promise<StatsReply[]> {
    const live = this.slots.filter((s) => s.worker !== undefined && s.sent > 0)
    if (live.length === 0) return Promise.resolve([])
    const id = this.statsId++
    return new Promise((resolve) => {
      const entry = {
        waiting: new Set(live.map((s) => s.slot)),
        replies: [] as StatsReply[],
        done: () => {
          clearTimeout(timer)
          this.statsPending.delete(id)
          resolve(entry.replies.sort((a, b) => a.slot - b.slot))
        },
      }
      const timer = setTimeout(entry.done, STATS_TIMEOUT_MS)
      this.statsPending.set(id, entry)
      for (const s of live) this.send(s, { t: 'stats', id, metrics })
    })
  }

  /** The live workers' answers of this round; a worker that died meanwhile has been retired and is left out. */
  private freshReplies(replies: StatsReply[]): StatsReply[] {
    return replies.filter((r) => this.slots[r.slot - 1]?.worker === r.worker)
  }

  /**
   * The workers' counters summed (what /stats shows): the live workers' answers, the last answer of a live worker
   * that did not answer in time (its counters), and the retired counters of workers that exited (sums.ts).
   */
  private sumSnapshots(replies: StatsReply[]): ProxySnapshot {
    const fresh = this.freshReplies(replies)
    let sum = mergeSnapshots(fresh.map((r) => r.snap))
    for (const s of this.slots)
      if (s.worker !== undefined && s.last !== null && !fresh.some((r) => r.slot === s.slot))
        sum = addCounters(sum, s.last)
    return addCounters(sum, this.retiredSnapshot)
  }

  /** The workers' counters summed (what /stats shows); never lower than before when a worker dies. */
  async snapshot(): Promise<ProxySnapshot> {
    this.lastSnapshot = this.sumSnapshots(await this.collect(false))
    return this.lastSnapshot
  }

  /**
   * The Prometheus text: the primary's registry and every worker's, summed (prom-client's cluster aggregation),
   * with the retired counters of workers that exited; `process_start_time_seconds` is the primary's (sums.ts).
   */
  async scrape(): Promise<{ text: string; contentType: string }> {
    const replies = await this.collect(true)
    this.lastSnapshot = this.sumSnapshots(replies)
    const fresh = this.freshReplies(replies)
    const workers = this.slots
      .filter((s) => s.worker !== undefined)
      .map((s) => ({ fresh: fresh.find((r) => r.slot === s.slot)?.metrics ?? null, last: s.lastMetrics }))
    const all = metricsToSum(
      (await this.o.registry.getMetricsAsJSON()) as unknown as MetricJson[],
      workers,
      this.retiredMetrics,
    )
    const merged = AggregatorRegistry.aggregate(all as unknown as Parameters<typeof AggregatorRegistry.aggregate>[0])
    return { text: await merged.metrics(), contentType: this.o.registry.contentType }
  }

  /** Per-worker facts (slot, pid, generation served…). */
  workers(): WorkerInfo[] {
    return this.slots.map((s) => ({
      worker: s.slot,
      pid: s.pid ?? null,
      listening: s.listening,
      generation: s.generation,
      restarts: s.restarts,
      lastSwapMs: Math.round(s.swapMs * 1000) / 1000,
      accepted: s.last?.accepted ?? null,
      active: s.last?.active ?? null,
    }))
  }

  /**
   * Every worker stops accepting and waits for its connections up to `graceMs`, then destroys the rest; no worker
   * is restarted from now on. `onStopped` is called once every worker has closed its listener (the shared
   * socket is closed then: new connections are refused), with the connections left open. Resolves with the
   * number of connections destroyed, over all workers.
   */
  drain(graceMs: number, onStopped: (open: number) => void = () => {}): Promise<number> {
    if (this.state === 'closed') {
      onStopped(0)
      return Promise.resolve(0)
    }
    this.state = 'draining'
    for (const s of this.slots) {
      clearTimeout(s.restartTimer)
      s.listening = false // each worker closes its listener first thing
    }
    const live = this.slots.filter((s) => s.worker !== undefined && s.sent > 0)
    if (live.length === 0) {
      onStopped(0)
      return Promise.resolve(0)
    }
    return new Promise((resolve) => {
      let told = false
      const entry = {
        waiting: new Set(live.map((s) => s.slot)),
        destroyed: 0,
        stopping: new Set(live.map((s) => s.slot)),
        open: 0,
        stopped: () => {
          if (told) return
          told = true
          onStopped(entry.open)
        },
        done: () => {
          entry.stopped()
          this.drainPending = undefined
          resolve(entry.destroyed)
        },
      }
      this.drainPending = entry
      for (const s of live) this.send(s, { t: 'drain', graceMs })
    })
  }

  /**
   * Writes `wire`'s compact routes to a file of the pool's private directory when they are large enough to be
   * worth it; undefined (send through the channels) when they are small or the file cannot be written.
   */
  private async writeTableFile(wire: WireTable, seq: number): Promise<FileTable | undefined> {
    // the file's name is known once the directory exists: the message gets it below
    const { table, views } = fileTableOf(wire, '')
    const { size } = table
    if (size < FILE_TABLE_MIN_BYTES) return undefined
    let file = ''
    try {
      if (this.fileDir === undefined) this.fileDir = mkdtempSync(join(tmpdir(), 'zonegate-egress-tables-'))
      file = join(this.fileDir, `table-${seq}.bin`)
      const fh = await open(file, 'wx', 0o600)
      try {
        // writev may write part of what it is given: go on from where it stopped
        for (let rest = views; rest.length > 0; ) {
          const { bytesWritten } = await fh.writev(rest)
          if (bytesWritten === 0) throw new Error(`no progress writing ${size} bytes`)
          rest = remainder(rest, bytesWritten)
        }
      } finally {
        await fh.close()
      }
    } catch (err) {
      this.o.log.warn({ err, file }, 'table file not written; sending the table through each worker channel')
      if (file !== '') await unlink(file).catch(() => {})
      return undefined
    }
    this.o.log.debug({ file, bytes: size, seq }, 'table handed to the workers in a file')
    return { ...table, file }
  }

  /** Closes every worker (their open connections are destroyed) and waits for them to exit (SIGKILL after 5 s). */
  async close(): Promise<void> {
    const wasStarting = this.state === 'starting'
    this.state = 'closed'
    for (const s of this.slots) clearTimeout(s.restartTimer)
    if (wasStarting) this.startWaiter?.reject(new Error('stopped before the workers listened'))
    const exits = this.slots
      .filter((s) => s.worker !== undefined)
      .map((s) => {
        const w = s.worker!
        return new Promise<void>((resolve) => {
          if (w.isDead()) return resolve()
          w.once('exit', () => resolve())
          const kill = setTimeout(() => w.process.kill('SIGKILL'), 5000)
          kill.unref()
          w.once('exit', () => clearTimeout(kill))
          if (w.isConnected()) this.send(s, { t: 'close' })
          else w.process.kill('SIGKILL')
        })
      })
    await Promise.all(exits)
    this.checkWaiters()
    if (this.fileDir !== undefined) rmSync(this.fileDir, { recursive: true, force: true })
  }

  private send(s: Slot, m: ToWorker): void {
    const w = s.worker
    if (w === undefined || !w.isConnected()) return
    try {
      w.send(m)
    } catch (err) {
      this.o.log.warn({ worker: s.slot, err }, 'message to worker not sent')
    }
  }

  private fork(s: Slot): void {
    s.restartTimer = undefined
    const w = cluster.fork({ ZONEGATE_EGRESS_WORKER: String(s.slot) })
    s.worker = w
    s.pid = w.process.pid
    s.sent = 0
    s.acked = 0
    s.generation = null
    s.listening = false
    s.last = null
    s.lastMetrics = null
    s.startedAt = Date.now()
    w.on('message', (m: FromWorker) => this.onMessage(s, w, m))
    w.on('exit', (code, signal) => this.onExit(s, w, code, signal))
    w.on('error', (err) => this.o.log.warn({ worker: s.slot, err }, 'worker channel error'))
  }

  private onMessage(s: Slot, w: Worker, m: FromWorker): void {
    if (s.worker !== w) return
    switch (m.t) {
      case 'hello': {
        if (this.current === undefined || this.listen === undefined || this.state === 'closed') return
        // the current table and identities, then listen: a worker never accepts on anything older
        this.send(s, {
          t: 'init',
          slot: s.slot,
          settings: this.o.settings,
          listen: this.listen,
          seq: this.seq,
          table: this.current,
          identities: [...this.identities],
        })
        s.sent = this.seq
        return
      }
      case 'listening': {
        s.listening = true
        s.acked = Math.max(s.acked, m.seq)
        if (s.acked === m.seq) s.generation = m.generation
        this.bound ??= m.address as AddressInfo
        if (this.state === 'starting' && this.slots.every((x) => x.listening)) {
          this.state = 'running'
          this.startWaiter?.resolve(this.bound)
        } else if (this.state === 'running') {
          this.o.log.info({ worker: s.slot, pid: s.pid, generation: s.generation }, 'worker listening')
        }
        this.checkWaiters()
        return
      }
      case 'listen-error': {
        this.o.log.error({ worker: s.slot, err: new Error(m.error) }, 'worker cannot listen')
        if (this.state === 'starting') {
          this.startWaiter?.reject(new Error(m.error))
          void this.close()
        } else if (this.state === 'running') w.process.kill('SIGKILL') // restarted with backoff
        return
      }
      case 'swapped': {
        if (m.seq > s.acked) {
          s.acked = m.seq
          s.generation = m.generation
          s.swapMs = m.ms
        }
        this.checkWaiters()
        return
      }
      case 'stats': {
        const p = this.statsPending.get(m.id)
        if (p === undefined || !p.waiting.delete(s.slot)) return
        s.last = m.snap
        if (m.metrics) s.lastMetrics = m.metrics as MetricJson[]
        p.replies.push({
          slot: s.slot,
          worker: w,
          snap: m.snap,
          ...(m.metrics ? { metrics: m.metrics as MetricJson[] } : {}),
        })
        if (p.waiting.size === 0) p.done()
        return
      }
      case 'stopped': {
        const d = this.drainPending
        if (d === undefined || !d.stopping.delete(s.slot)) return
        d.open += m.active
        if (d.stopping.size === 0) d.stopped()
        return
      }
      case 'drained': {
        const d = this.drainPending
        if (d === undefined || !d.waiting.delete(s.slot)) return
        d.destroyed += m.destroyed
        if (d.waiting.size === 0) d.done()
        return
      }
    }
  }

  private onExit(s: Slot, w: Worker, code: number | null, signal: string | null): void {
    if (s.worker !== w) return
    const pid = s.pid
    s.worker = undefined
    s.pid = undefined
    s.listening = false
    s.sent = 0
    s.acked = 0
    s.generation = null
    // its counters as last seen stay in every later sum: the replacement counts from 0 (sums.ts)
    if (s.last !== null) this.retiredSnapshot = addCounters(this.retiredSnapshot, s.last)
    if (s.lastMetrics !== null) this.retiredMetrics = retireMetrics(this.retiredMetrics, s.lastMetrics)
    s.last = null
    s.lastMetrics = null
    for (const p of this.statsPending.values()) if (p.waiting.delete(s.slot) && p.waiting.size === 0) p.done()
    const d = this.drainPending
    if (d?.stopping.delete(s.slot) && d.stopping.size === 0) d.stopped()
    if (d?.waiting.delete(s.slot) && d.waiting.size === 0) d.done()
    this.checkWaiters()
    if (this.state === 'closed' || this.state === 'draining') return
    if (this.state === 'starting') {
      this.startWaiter?.reject(
        new Error(`egress worker ${s.slot} exited (code ${code}, signal ${signal}) before listening`),
      )
      void this.close()
      return
    }
    s.crashes = Date.now() - s.startedAt < CRASH_WINDOW_MS ? s.crashes + 1 : 0
    const delay = s.crashes === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 250 * 2 ** (s.crashes - 1))
    s.restarts++
    this.o.log.warn({ worker: s.slot, pid, code, signal, restartInMs: delay }, 'worker exited; restarting it')
    s.restartTimer = setTimeout(() => {
      if (this.state === 'running') this.fork(s)
    }, delay)
  }

  /** Resolves the table waiters every live worker has acknowledged. */
  private checkWaiters(): void {
    if (this.waiters.length === 0) return
    const left: typeof this.waiters = []
    for (const w of this.waiters) {
      const ok = this.slots.every((s) => s.worker === undefined || s.sent === 0 || s.acked >= w.seq)
      if (ok) w.resolve()
      else left.push(w)
    }
    this.waiters = left
  }
}

/** What is left of `views` after the first `n` bytes. Pure. */
function remainder(views: Uint8Array[], n: number): Uint8Array[] {
  let i = 0
  while (i < views.length && n >= views[i]!.byteLength) n -= views[i++]!.byteLength
  if (i === views.length) return []
  return [views[i]!.subarray(n), ...views.slice(i + 1)]
}
