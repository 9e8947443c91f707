import { lookup as systemLookup } from 'node:dns'
import net, { type AddressInfo, isIP } from 'node:net'
import type { Logger } from 'pino'
import { ClientHelloReader, parseClientHello } from '../core/client-hello.js'
import { TableReleasedError } from '../core/compact-table.js'
import { MtlsRefusal } from '../core/mesh-mtls.js'
import type { RoutingTable } from '../core/routing-table.js'
import { Conn, type ConnSocket, kConn, listenClient, listenUpstream, onUpstreamRead, Phase } from './connection.js'
import { DeadlineSweep } from './deadline-sweep.js'
import { DnsCache } from './dns-cache.js'
import {
  connectUpstream,
  type LeanBindings,
  LeanConn,
  leanBindings,
  relay,
  sendAlert,
  startLean,
  type TcpHandle,
} from './lean.js'
import { dialTerminated, type MeshIdentities, startTermination } from './mtls.js'
import { DEFAULT_PROXY_OPTIONS, type ProxyHooks, type ProxyOptions, UNRECOGNIZED_NAME_ALERT } from './proxy-options.js'
import { ProxyStats, RejectReason } from './proxy-stats.js'
import { ReadBufferPool } from './read-buffers.js'

/**
 * The SNI proxy: a `net` server that reads each connection's ClientHello, looks up the current RoutingTable
 * once, dials the route's upstream (failing over in weighted round-robin order), forwards the peeked bytes
 * unchanged and relays both ways with backpressure and half-close. `terminate-mtls` routes branch off after
 * the lookup (proxy/mtls.ts): the egress terminates the caller's mesh mTLS, checks it, then dials plain or TLS.
 *
 * Hot path notes: socket handlers are module-level functions that find their connection through a symbol on
 * the socket (no closures per connection); a ClientHello in one chunk is parsed in place; no connection has a
 * timer of its own: one coarse DeadlineSweep per proxy checks each connection's phase deadline (hello, connect,
 * idle, linger), so the relay pays no timer refresh per read or write.
 */

export {
  DEFAULT_PROXY_OPTIONS,
  type ProxyHooks,
  type ProxyOptions,
  READ_BUFFER_BYTES,
  UNRECOGNIZED_NAME_ALERT,
} from './proxy-options.js'
export { RejectReason } from './proxy-stats.js'

/** Tracks open connections, routes new ones on the current table, and drains on swap or shutdown. */
export class TcpProxy {
  readonly stats = new ProxyStats()
  readonly options: ProxyOptions
  private table: RoutingTable | undefined
  private readonly server: net.Server
  private readonly conns = new Set<Conn | LeanConn>()
  /** The lean data path's bindings (proxy/lean.ts), or null on the `net` path. */
  private lean: LeanBindings | null = null
  /** The listening socket has TCP_NODELAY (inherited by accepted sockets on Linux). */
  private listenerNoDelay = false
  private readonly debug: boolean
  private nextId = 1
  /** The egress's mesh identities (terminate-mtls routes); without them such routes are refused. */
  identities: MeshIdentities | undefined
  private idleWaiters: (() => void)[] = []
  /** Upstream read buffers (`onread`), reused across connections. */
  private readonly readBuffers = new ReadBufferPool()
  /** Fires the phase deadlines of `conns` (and of lingering upstreams); deadlines fire up to `periodMs` late. */
  readonly deadlines: DeadlineSweep
  /** Upstream host names' addresses (undefined with `dnsTtlMs` 0: Node's lookup per connection). */
  readonly dns: DnsCache | undefined

  constructor(
    readonly log: Logger,
    options: Partial<ProxyOptions> = {},
    private readonly hooks: ProxyHooks = {},
  ) {
    this.options = { ...DEFAULT_PROXY_OPTIONS, ...options }
    const o = this.options
    const period = DeadlineSweep.periodFor([o.helloTimeoutMs, o.connectTimeoutMs, o.idleTimeoutMs, o.closeLingerMs])
    this.deadlines = new DeadlineSweep(this.conns, period, o.idleTimeoutMs)
    this.debug = log.isLevelEnabled('debug')
    this.dns = o.dnsTtlMs > 0 ? new DnsCache(o.dnsTtlMs) : undefined
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.accept(s as ConnSocket))
    this.server.maxConnections = this.options.maxConnections
    this.server.on('drop', () => this.stats.reject(RejectReason.OverCapacity))
  }

  /** The table new connections are routed on. */
  get current(): RoutingTable | undefined {
    return this.table
  }

  /** Open connections (any phase). */
  get activeConnections(): number {
    return this.conns.size
  }

  /**
   * Swaps the table: one reference assignment, so the next accepted connection sees `next` and open ones keep
   * their upstream. Open connections whose route is absent from `next` are closed after the drain period
   * unless a later table brings the route back. Returns the number of connections scheduled for closing.
   * Throws a TableReleasedError (and keeps the served table) when `next` was released.
   */
  setTable(next: RoutingTable): number {
    if (next.released) throw new TableReleasedError(`swap to table generation ${next.generation ?? '(none)'}`)
    const prev = this.table
    this.table = next
    if (prev === undefined || this.conns.size === 0) return 0
    const orphans: (Conn | LeanConn)[] = []
    for (const c of this.conns) if (c.route !== null && !next.has(c.route.sni)) orphans.push(c)
    if (orphans.length === 0) return 0
    const timer = setTimeout(() => this.closeOrphans(orphans), this.options.drainPeriodMs)
    timer.unref()
    return orphans.length
  }

  private closeOrphans(orphans: (Conn | LeanConn)[]): void {
    if (this.table?.released) {
      // cannot tell which routes the served table has (a bug: only a replaced table is released): close none
      this.log.error({ generation: this.table.generation }, 'served table released; removed routes not closed')
      return
    }
    for (const c of orphans) {
      if (c.phase === Phase.Closed || c.route === null || this.table?.has(c.route.sni)) continue
      this.stats.drainedClosed++
      if (this.debug) this.log.debug({ conn: c.id, route: { sni: c.route.sni } }, 'closing connection of removed route')
      destroyConn(c)
    }
  }

  /** Starts listening; resolves with the bound address. Rejects on bind errors (EADDRINUSE…). */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err)
      this.server.once('error', onError)
      this.server.listen({ host, port, backlog: 1024 }, () => {
        this.server.off('error', onError)
        this.takeAccepts()
        resolve(this.server.address() as AddressInfo)
      })
    })
  }

  /**
   * The lean data path takes the accepted handles before `net` wraps them in a Socket: the listening handle's
   * `onconnection` (set by `net` when it listens, on a shared cluster handle too) is replaced by ours.
   */
  private takeAccepts(): void {
    if (this.options.dataPath !== 'lean') return
    const b = leanBindings()
    const handle = (this.server as unknown as { _handle?: { onconnection?: unknown } })._handle
    if (b === null || handle == null || typeof handle.onconnection !== 'function') {
      this.log.warn('the lean data path is not available on this Node; relaying with net sockets')
      return
    }
    this.lean = b
    // TCP_NODELAY on the listening socket is copied by Linux to every accepted one: one setsockopt in all
    // instead of one per connection (elsewhere, and on a handle without the call, each accepted handle sets it)
    const listener = handle as { setNoDelay?: (on: boolean) => number }
    this.listenerNoDelay =
      process.platform === 'linux' && typeof listener.setNoDelay === 'function' && listener.setNoDelay(true) === 0
    handle.onconnection = (err: number, client: TcpHandle | undefined) => this.acceptHandle(err, client)
  }

  /** The data path in use: `lean` once listening with the bindings available, else `net`. */
  get dataPath(): 'lean' | 'net' {
    return this.lean === null ? 'net' : 'lean'
  }

  /** The bound address while listening. */
  address(): AddressInfo | undefined {
    return (this.server.address() as AddressInfo | null) ?? undefined
  }

  /** Stops accepting new connections; open ones continue. Idempotent. */
  stopAccepting(): void {
    if (this.server.listening) this.server.close()
  }

  /**
   * Waits until every open connection has closed or `graceMs` passed, then destroys what is left.
   * Resolves with the number of connections that had to be destroyed.
   */
  async drain(graceMs: number): Promise<number> {
    this.stopAccepting()
    if (this.conns.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs)
        this.idleWaiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    const left = this.conns.size
    for (const c of [...this.conns]) destroyConn(c)
    return left
  }

  /** Bytes received from / sent to clients, closed connections plus open ones. */
  bytes(): { in: number; out: number } {
    let bin = this.stats.closedBytesIn
    let bout = this.stats.closedBytesOut
    for (const c of this.conns) {
      if (c instanceof LeanConn) {
        bin += c.bytesIn
        bout += c.bytesOut
      } else {
        bin += c.client.bytesRead
        bout += c.client.bytesWritten
      }
    }
    return { in: bin, out: bout }
  }

  private accept(socket: ConnSocket): void {
    const now = performance.now()
    const c = new Conn(this.nextId++, this, socket, now)
    c.deadline = now + this.options.helloTimeoutMs
    socket[kConn] = c
    this.conns.add(c)
    this.stats.accepted++
    listenClient(socket)
    this.deadlines.arm()
  }

  /** The lean path's accept: over capacity → closed at once, else a LeanConn reading its ClientHello. */
  private acceptHandle(err: number, handle: TcpHandle | undefined): void {
    if (err !== 0 || handle === undefined) return
    if (this.conns.size >= this.options.maxConnections) {
      handle.close()
      this.stats.reject(RejectReason.OverCapacity)
      return
    }
    const now = performance.now()
    const c = new LeanConn(this.nextId++, this, handle, now)
    c.deadline = now + this.options.helloTimeoutMs
    this.conns.add(c)
    this.stats.accepted++
    startLean(c, this.lean!, this.listenerNoDelay)
    this.deadlines.arm()
  }

  /** Feeds one chunk of the ClientHello phase; routes or refuses once the reader decides. */
  hello(c: Conn | LeanConn, chunk: Buffer): void {
    let r = c.reader === null ? parseClientHello(chunk) : c.reader.push(chunk)
    if (r.ok === null) {
      if (c.reader === null) {
        c.reader = new ClientHelloReader()
        r = c.reader.push(chunk)
      }
      if (r.ok === null) return
    }
    const helloSeconds = (performance.now() - c.startedAt) / 1000
    this.stats.helloSeconds.observe(helloSeconds)
    this.hooks.helloRead?.(helloSeconds)
    if (r.ok === false) {
      this.refuse(c, r.reason, r.tls)
      return
    }
    const table = this.table
    if (table === undefined || table.released) {
      // a released table here is a bug (only a replaced table is released): refuse, never read it
      if (table !== undefined) this.log.error({ conn: c.id, generation: table.generation }, 'served table released')
      this.refuse(c, RejectReason.NoTable, true)
      return
    }
    const route = table.lookup(r.serverName)
    if (route === undefined) {
      if (this.debug) this.log.debug({ conn: c.id, sni: r.serverName }, 'unknown sni')
      this.refuse(c, RejectReason.UnknownSni, true)
      return
    }
    c.route = route
    c.generation = table.generation
    c.peeked = c.reader === null ? chunk : c.reader.peeked()
    c.reader = null
    if (c instanceof LeanConn) {
      if (route.terminate) {
        startTermination(this, this.toNet(c), this.identities)
        return
      }
      c.phase = Phase.Connecting
      this.leanDial(c)
      return
    }
    if (route.terminate) {
      startTermination(this, c, this.identities)
      return
    }
    // The client is not paused here: a TLS client waits for the ServerHello, so nothing more arrives on almost
    // every connection. Bytes that do arrive while connecting are kept and pause it (onClientData), which bounds them.
    c.phase = Phase.Connecting
    this.dial(c)
  }

  private refuse(c: Conn | LeanConn, reason: RejectReason, tls: boolean): void {
    if (c instanceof LeanConn) this.leanReject(c, reason, tls)
    else this.reject(c, reason, tls)
  }

  /**
   * A lean connection routed to terminate-mtls: its handle gets the `net.Socket` that `net` would have made at
   * accept (proxy/mtls.ts takes it from there, replaying the peeked ClientHello).
   */
  private toNet(lc: LeanConn): Conn {
    // reading stops first: the Socket starts it again itself (a second readStart fails with EALREADY)
    lc.client.readStop()
    const socket = new net.Socket({ handle: lc.client, allowHalfOpen: true } as net.SocketConstructorOpts) as ConnSocket
    socket.setNoDelay(true)
    const c = new Conn(lc.id, this, socket, lc.startedAt)
    socket[kConn] = c
    c.route = lc.route
    c.generation = lc.generation
    c.peeked = lc.peeked
    c.deadline = lc.deadline
    lc.phase = Phase.Closed
    this.conns.delete(lc)
    this.conns.add(c)
    return c
  }

  /** Lean path: dials the route's next upstream in WRR order (skipping those tried), or gives up. */
  private leanDial(c: LeanConn): void {
    const route = c.route!
    const i = route.pick(c.tried ?? undefined)
    if (i < 0) {
      this.stats.reject(RejectReason.UpstreamUnavailable)
      if (this.debug) this.log.debug({ conn: c.id, route: { sni: route.sni } }, 'no upstream reachable')
      c.destroy()
      return
    }
    const u = route.upstreams[i]!
    c.upstreamIndex = i
    c.readBuf ??= this.readBuffers.take()
    c.deadline = performance.now() + this.options.connectTimeoutMs
    const family = isIP(u.address)
    if (family !== 0) {
      connectUpstream(c, u, u.address, family)
      return
    }
    const lookup = this.dns?.lookup ?? systemLookup
    lookup(u.address, {}, (err: Error | null, address: unknown, family?: number) => {
      if (c.phase !== Phase.Connecting || c.upstreamIndex !== i || c.up !== null) return
      if (err !== null || typeof address !== 'string') this.failover(c, `lookup failed: ${err?.message}`)
      else connectUpstream(c, u, address, family ?? isIP(address))
    })
  }

  /** Lean path: the upstream is connected. */
  leanConnected(c: LeanConn): void {
    c.phase = Phase.Relay
    c.deadline = performance.now() + this.options.idleTimeoutMs
    c.seen = -1
    c.routeStats = this.stats.route(c.route!.sni)
    if (this.debug) this.logRelaying(c)
    relay(c)
  }

  /** Lean path: refused (counted); with `tls`, a TLS alert first and the linger for the client to close. */
  leanReject(c: LeanConn, reason: RejectReason, tls: boolean): void {
    this.stats.reject(reason)
    if (this.debug) this.log.debug({ conn: c.id, reason }, 'connection refused')
    c.phase = Phase.Closing
    c.reader = null
    if (!tls || c.clientEof) {
      c.destroy()
      return
    }
    c.deadline = performance.now() + this.options.closeLingerMs
    sendAlert(c, UNRECOGNIZED_NAME_ALERT)
  }

  /** Lean path: both handles are closed. */
  leanClosed(c: LeanConn): void {
    if (!this.conns.delete(c)) return
    this.releaseReadBuffer(c)
    this.stats.closedBytesIn += c.bytesIn
    this.stats.closedBytesOut += c.bytesOut
    if (c.routeStats !== null) c.routeStats.active--
    if (this.debug && c.route !== null) {
      this.log.debug({ conn: c.id, sni: c.route.sni, in: c.bytesIn, out: c.bytesOut }, 'connection closed')
    }
    this.notifyIdle()
  }

  /** Dials the route's next upstream in WRR order (skipping those tried), or gives up. */
  dial(c: Conn): void {
    const route = c.route!
    const i = route.pick(c.tried ?? undefined)
    if (i < 0) {
      this.stats.reject(RejectReason.UpstreamUnavailable)
      if (this.debug) this.log.debug({ conn: c.id, route: { sni: route.sni } }, 'no upstream reachable')
      c.phase = Phase.Closing
      c.client.destroy()
      return
    }
    const u = route.upstreams[i]!
    c.upstreamIndex = i
    c.readBuf ??= this.readBuffers.take()
    if (route.terminate) {
      c.deadline = performance.now() + this.options.connectTimeoutMs
      try {
        c.upstream = dialTerminated(c, u)
      } catch (err) {
        // unusable TLS material for this upstream: count it like a failed connect and try the next one
        this.stats.connectFailed(u.key)
        if (this.debug) this.log.debug({ conn: c.id, upstream: u.key, err }, 'upstream TLS settings unusable')
        c.tried ??= new Set()
        c.tried.add(i)
        this.dial(c)
      }
      return
    }
    const options: net.NetConnectOpts = {
      host: u.address,
      port: u.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: { buffer: c.readBuf, callback: onUpstreamRead as (n: number, buf: Uint8Array) => boolean },
    }
    // net.connect looks nothing up for an IP address, so only host names reach the cache
    if (this.dns !== undefined) options.lookup = this.dns.lookup
    const s = net.connect(options) as ConnSocket
    s[kConn] = c
    c.upstream = s
    c.deadline = performance.now() + this.options.connectTimeoutMs
    listenUpstream(s)
  }

  /** The upstream attempt failed before connecting (error or connect timeout): count it and try the next one. */
  failover(c: Conn | LeanConn, err: string): void {
    if (c instanceof LeanConn) {
      c.up?.close()
      c.up = null
    } else {
      c.upstream?.destroy()
      c.upstream = null
    }
    const u = c.route!.upstreams[c.upstreamIndex]!
    this.stats.connectFailed(u.key)
    if (this.debug) this.log.debug({ conn: c.id, upstream: u.key, err }, 'upstream connect failed')
    if (c.phase !== Phase.Connecting) return
    c.tried ??= new Set()
    c.tried.add(c.upstreamIndex)
    if (c instanceof LeanConn) this.leanDial(c)
    else this.dial(c)
  }

  connected(c: Conn, s: ConnSocket): void {
    c.phase = Phase.Relay
    c.deadline = performance.now() + this.options.idleTimeoutMs
    c.seen = -1
    if (c.peeked !== null) s.write(c.peeked)
    c.peeked = null
    if (c.extra !== null) for (const b of c.extra) s.write(b)
    c.extra = null
    if (c.clientEnded) s.end()
    c.routeStats = this.stats.route(c.route!.sni)
    if (c.client.readableFlowing === false) c.client.resume()
    if (this.debug) this.logRelaying(c)
  }

  private logRelaying(c: Conn | LeanConn): void {
    const u = c.route!.upstreams[c.upstreamIndex]!
    this.log.debug({ conn: c.id, sni: c.route!.sni, upstream: u.key, generation: c.generation }, 'relaying')
  }

  /** A terminated caller refused after its handshake (certificate or permission): counted, then closed. */
  refuseTerminated(c: Conn, reason: MtlsRefusal, service: string | undefined): void {
    this.stats.reject(reason)
    if (this.debug) this.log.debug({ conn: c.id, reason, caller: service ?? null, sni: c.route?.sni }, 'caller refused')
    c.phase = Phase.Closing
    c.client.destroy()
  }

  /** The caller's TLS handshake outlived the hello deadline. */
  handshakeTimedOut(c: Conn): void {
    this.stats.reject(MtlsRefusal.HandshakeTimeout)
    c.phase = Phase.Closing
    c.client.destroy()
  }

  reject(c: Conn, reason: RejectReason, tls: boolean): void {
    this.stats.reject(reason)
    if (this.debug) this.log.debug({ conn: c.id, reason }, 'connection refused')
    c.phase = Phase.Closing
    c.reader = null
    if (!tls || c.client.destroyed) {
      c.client.destroy()
      return
    }
    c.deadline = performance.now() + this.options.closeLingerMs
    c.client.end(UNRECOGNIZED_NAME_ALERT)
  }

  closed(c: Conn, hadError: boolean): void {
    c.phase = Phase.Closed
    const up = c.upstream
    if (up !== null && !up.destroyed) {
      // A clean close lets the upstream flush what the client sent last; an error (RST) cuts it.
      if (hadError || !up.writableEnded) up.destroy()
      else {
        up.destroySoon()
        if (!up.destroyed) {
          c.deadline = performance.now() + this.options.closeLingerMs
          this.deadlines.linger(c)
        }
      }
    }
    this.conns.delete(c)
    if (up === null || up.destroyed) this.releaseReadBuffer(c)
    this.stats.closedBytesIn += c.client.bytesRead
    this.stats.closedBytesOut += c.client.bytesWritten
    if (c.routeStats !== null) c.routeStats.active--
    if (this.debug && c.route !== null) {
      this.log.debug(
        { conn: c.id, sni: c.route.sni, in: c.client.bytesRead, out: c.client.bytesWritten },
        'connection closed',
      )
    }
    this.notifyIdle()
  }

  private notifyIdle(): void {
    if (this.conns.size === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const w of waiters) w()
    }
  }

  /** Returns the connection's read buffer to the pool: call once neither socket can touch it any more. */
  releaseReadBuffer(c: Conn | LeanConn): void {
    if (c.readBuf === null) return
    this.readBuffers.give(c.readBuf)
    c.readBuf = null
  }

  /** Stops listening and destroys every connection at once. */
  close(): Promise<void> {
    this.deadlines.close()
    for (const c of [...this.conns]) destroyConn(c)
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()))
  }
}

/** Closes both sides of a connection now. */
function destroyConn(c: Conn | LeanConn): void {
  if (c instanceof LeanConn) {
    c.destroy()
    return
  }
  c.upstream?.destroy()
  c.client.destroy()
}
