import type { Socket } from 'node:net'
import type { ClientHelloReader } from '../core/client-hello.js'
import type { Route } from '../core/routing-table.js'
import type { RouteStats } from './proxy-stats.js'
import { RejectReason } from './proxy-stats.js'
import type { TcpProxy } from './tcp-proxy.js'

/**
 * One proxied connection and its socket handlers. The handlers are module-level functions shared by every
 * connection (no closures per connection): each finds its connection through a symbol on the socket and
 * calls back into the TcpProxy for the decisions.
 */

/** After refusing with an alert, how long to wait for the client to close before cutting it. */
export const CLOSE_LINGER_MS = 2000

/** `Handshake`: terminate-mtls only, the egress's TLS handshake with the caller is running. */
export const Phase = { Hello: 0, Connecting: 1, Relay: 2, Closing: 3, Closed: 4, Handshake: 5 } as const
export type Phase = (typeof Phase)[keyof typeof Phase]

export const kConn = Symbol('conn')
export type ConnSocket = Socket & { [kConn]: Conn }

/** One client connection and what it was routed to. */
export class Conn {
  phase: Phase = Phase.Hello
  reader: ClientHelloReader | null = null
  peeked: Buffer | null = null
  extra: Buffer[] | null = null
  upstream: ConnSocket | null = null
  route: Route | null = null
  routeStats: RouteStats | null = null
  upstreamIndex = -1
  tried: Set<number> | null = null
  generation: number | undefined = undefined
  clientEnded = false
  /** The upstream's 'drain' handler is attached on the first backpressure only (most connections see none). */
  upstreamDrainWatched = false
  /** terminate-mtls: the caller's service from its SPIFFE id, once the handshake verified it. */
  caller: string | null = null
  /**
   * The buffer the upstream socket reads into (`onread`), from the proxy's pool, returned when both sockets
   * are closed. Reusing resident memory keeps the download direction free of per-read allocations.
   */
  readBuf: Buffer | null = null
  /** Resumes the upstream once the client has written out a chunk that still pointed into `readBuf`. */
  resumeUpstream: ((err?: Error | null) => void) | null = null
  /**
   * When the current phase times out (performance.now() ms; Infinity: never): the hello deadline, the upstream
   * connect timeout, the idle timeout while relaying, the linger after a refusal. The proxy's shared sweep
   * checks it; no connection has a timer of its own.
   */
  deadline = Number.POSITIVE_INFINITY
  /** Bytes read on both sockets at the last sweep (relay phase): a change is activity and pushes `deadline`. */
  seen = 0
  constructor(
    readonly id: number,
    readonly proxy: TcpProxy,
    /** The accepted socket; for terminate-mtls, the TLS socket wrapping it once the handshake starts. */
    public client: ConnSocket,
    readonly startedAt: number,
  ) {}
}

/** Attaches the client-side handlers. */
export function listenClient(socket: ConnSocket): void {
  socket.on('data', onClientData)
  socket.on('end', onClientEnd)
  socket.on('error', onSocketError)
  socket.on('close', onClientClose)
}

/** Detaches the client-side handlers (terminate-mtls: the TLS socket that wraps the client takes them). */
export function unlistenClient(socket: ConnSocket): void {
  socket.off('data', onClientData)
  socket.off('end', onClientEnd)
  socket.off('close', onClientClose)
}

/** Attaches the upstream-side handlers. */
export function listenUpstream(s: ConnSocket): void {
  s.on('connect', onUpstreamConnect)
  s.on('end', onUpstreamEnd)
  s.on('error', onUpstreamError)
  s.on('close', onUpstreamClose)
}

function onClientData(this: ConnSocket, chunk: Buffer): void {
  const c = this[kConn]
  if (c.phase === Phase.Relay) {
    const up = c.upstream!
    if (!up.write(chunk)) {
      this.pause()
      if (!c.upstreamDrainWatched) {
        c.upstreamDrainWatched = true
        up.on('drain', onUpstreamDrain)
      }
    }
  } else if (c.phase === Phase.Hello) c.proxy.hello(c, chunk)
  else if (c.phase === Phase.Connecting || c.phase === Phase.Handshake) {
    // kept for the upstream; the client stays paused until then, so at most one more read is held
    if (c.extra === null) c.extra = [chunk]
    else c.extra.push(chunk)
    this.pause()
  }
}

function onClientEnd(this: ConnSocket): void {
  const c = this[kConn]
  if (c.phase === Phase.Relay) endOrClose(c.upstream!)
  else if (c.phase === Phase.Connecting) c.clientEnded = true
  else if (c.phase === Phase.Hello) c.proxy.reject(c, RejectReason.ClientClosed, false)
  else this.destroy()
}

/**
 * The sweep's verdict on one open connection at `now`: acts when its phase deadline passed (hello deadline →
 * refused `hello-timeout`; connect timeout → next upstream; no bytes read either way for the idle timeout, or
 * a refused client still open after the linger → both sockets destroyed). Relay activity moves the deadline.
 */
export function expire(c: Conn, now: number, idleTimeoutMs: number): void {
  const seen = c.phase === Phase.Relay ? c.client.bytesRead + (c.upstream === null ? 0 : c.upstream.bytesRead) : 0
  if (!deadlinePassed(c, now, idleTimeoutMs, seen)) return
  if (c.phase === Phase.Hello) c.proxy.reject(c, RejectReason.HelloTimeout, false)
  else if (c.phase === Phase.Handshake) c.proxy.handshakeTimedOut(c)
  else if (c.phase === Phase.Connecting && c.upstream !== null) c.proxy.failover(c, 'connect timeout')
  else {
    c.upstream?.destroy()
    c.client.destroy()
  }
}

/**
 * The deadline check both data paths share: relay activity (`seen`, the bytes read on both sides, changed since
 * the last sweep) moves the idle deadline; otherwise true once the phase deadline has passed (cleared, so it
 * fires once).
 */
export function deadlinePassed(
  c: { phase: Phase; seen: number; deadline: number },
  now: number,
  idleTimeoutMs: number,
  seen: number,
): boolean {
  if (c.phase === Phase.Relay && seen !== c.seen) {
    c.seen = seen
    c.deadline = now + idleTimeoutMs
    return false
  }
  if (now < c.deadline) return false
  c.deadline = Number.POSITIVE_INFINITY
  return true
}

function onSocketError(): void {
  // 'close' follows every error; the connection is cleaned up there.
}

function onClientClose(this: ConnSocket, hadError: boolean): void {
  const c = this[kConn]
  c.proxy.closed(c, hadError)
}

export function onUpstreamConnect(this: ConnSocket): void {
  const c = this[kConn]
  if (c.upstream === this && c.phase === Phase.Connecting) c.proxy.connected(c, this)
  else this.destroy()
}

const EMPTY = Buffer.alloc(0)

/**
 * `onread` callback of upstream sockets: relays `n` bytes of the shared read buffer to the client. When the
 * client cannot take them at once they wait in its queue still pointing into the buffer, so the upstream stops
 * reading (returns false) until they are written out (a zero-length write's callback: 'drain' alone is not
 * emitted for a queue below the high-water mark).
 */
export function onUpstreamRead(this: ConnSocket, n: number, buf: Uint8Array): boolean {
  const c = this[kConn]
  const client = c.client
  if (c.upstream !== this || client.destroyed) return true
  const chunk = (buf as Buffer).subarray(0, n)
  // A chunk written while the client still has bytes queued waits in its queue, so it must not point into the
  // buffer: a TLS upstream (terminate-mtls) keeps filling it within one socket read, because Node's TLS layer
  // hands over every record it decrypted before it looks at the pause. (A TLS client copies what it is given at
  // once; a plain upstream delivers nothing more once paused.)
  client.write(client.writableLength === 0 ? chunk : Buffer.from(chunk))
  if (client.writableLength === 0) return true
  c.resumeUpstream ??= (err) => {
    if (!err && c.upstream !== null && !c.upstream.destroyed) c.upstream.resume()
  }
  client.write(EMPTY, c.resumeUpstream)
  return false
}

export function onUpstreamEnd(this: ConnSocket): void {
  const c = this[kConn]
  if (c.upstream === this) endOrClose(c.client)
}

/**
 * Forwards a FIN to `s`. When `s` has already delivered its own end and holds no unsent bytes, both directions
 * are over: closing it sends the same FIN (the kernel flushes its send buffer first, and there is nothing left
 * to read that would turn the close into a reset) and saves a shutdown plus its completion round.
 */
function endOrClose(s: ConnSocket): void {
  if (s.readableEnded && s.writableLength === 0) s.destroy()
  else s.end()
}

function onUpstreamDrain(this: ConnSocket): void {
  this[kConn].client.resume()
}

export function onUpstreamError(this: ConnSocket, err: Error): void {
  const c = this[kConn]
  if (c.upstream === this && c.phase === Phase.Connecting) {
    c.proxy.failover(c, (err as NodeJS.ErrnoException).code ?? err.message)
  }
}

export function onUpstreamClose(this: ConnSocket, hadError: boolean): void {
  const c = this[kConn]
  if (c.upstream === this && c.client.destroyed) c.proxy.releaseReadBuffer(c)
  if (c.upstream !== this || c.phase === Phase.Connecting || c.client.destroyed) return
  // After a clean close the client gets what is still buffered for it, then its end; after an error, nothing.
  if (hadError || !c.client.writableEnded) c.client.destroy()
  else c.client.destroySoon()
}
