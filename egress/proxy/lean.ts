import type { Route, Upstream } from '../core/routing-table.js'
import { deadlinePassed, Phase } from './connection.js'
import type { RouteStats } from './proxy-stats.js'
import { RejectReason } from './proxy-stats.js'
import type { TcpProxy } from './tcp-proxy.js'

/**
 * The lean data path (docs/decisions/016-lean-data-path.md): passthrough connections relayed on Node's libuv TCP
 * handles directly, without a `net.Socket` on either side. A `net.Socket` pair is two stream state machines, two
 * event emitters, a lookup request and a dozen callbacks per connection; here a connection is one plain object,
 * the handles call module-level functions, writes that complete at once allocate nothing that outlives the call,
 * and half-close, backpressure and every deadline stay as the `net` path has them.
 *
 * What it relies on: `process.binding('tcp_wrap')` / `('stream_wrap')`, the bindings `net` itself is written on
 * (undocumented, but kept on Node's allow list for `process.binding` since Node 10 and unchanged in shape from
 * Node 16 to 22). `leanBindings()` checks their shape once at start; when anything is missing the proxy keeps the
 * `net` path, and `--data-path net` forces it. terminate-mtls connections leave this path after the ClientHello:
 * their handle is wrapped in a `net.Socket` (as `net` would have done at accept) and handed to proxy/mtls.ts.
 */

/** libuv's end-of-stream code. */
const UV_EOF = -4095
const EMPTY = new Uint8Array(0)
/** Stop reading one side while the other side has more than this queued in the kernel's stead (as net's 16 KiB). */
const WRITE_HIGH_WATER = 16 * 1024

// biome-ignore lint/suspicious/noExplicitAny: internal bindings have no types
type Binding = any

export interface LeanBindings {
  TCP: Binding
  TCPConnectWrap: Binding
  SOCKET: number
  WriteWrap: Binding
  ShutdownWrap: Binding
  state: Int32Array
  kReadBytesOrError: number
  kArrayBufferOffset: number
  kLastWriteWasAsync: number
}

let cached: LeanBindings | null | undefined

/** The internal bindings the lean path uses, or null when this Node does not offer them in the expected shape. */
export function leanBindings(): LeanBindings | null {
  if (cached !== undefined) return cached
  cached = null
  try {
    const binding = (process as unknown as { binding?: (name: string) => Binding }).binding
    if (typeof binding !== 'function') return null
    const tcp = binding('tcp_wrap')
    const stream = binding('stream_wrap')
    const b: LeanBindings = {
      TCP: tcp.TCP,
      TCPConnectWrap: tcp.TCPConnectWrap,
      SOCKET: tcp.constants?.SOCKET,
      WriteWrap: stream.WriteWrap,
      ShutdownWrap: stream.ShutdownWrap,
      state: stream.streamBaseState,
      kReadBytesOrError: stream.kReadBytesOrError,
      kArrayBufferOffset: stream.kArrayBufferOffset,
      kLastWriteWasAsync: stream.kLastWriteWasAsync,
    }
    const fns = [b.TCP, b.TCPConnectWrap, b.WriteWrap, b.ShutdownWrap]
    if (fns.some((f) => typeof f !== 'function')) return null
    if (typeof b.SOCKET !== 'number' || !(b.state instanceof Int32Array)) return null
    if (![b.kReadBytesOrError, b.kArrayBufferOffset, b.kLastWriteWasAsync].every(Number.isInteger)) return null
    const p = b.TCP.prototype
    const methods = [
      'readStart',
      'readStop',
      'writeBuffer',
      'shutdown',
      'close',
      'connect',
      'connect6',
      'useUserBuffer',
    ]
    if (!methods.every((m) => typeof p[m] === 'function')) return null
    cached = b
  } catch {
    cached = null
  }
  return cached
}

/** A libuv TCP handle as the bindings expose it (the parts used here). */
export interface TcpHandle {
  lean: LeanConn
  onread: (ab: ArrayBuffer | undefined) => void
  readStart(): number
  readStop(): number
  writeBuffer(req: unknown, buf: Uint8Array): number
  shutdown(req: unknown): number
  close(cb?: () => void): void
  connect(req: unknown, address: string, port: number): number
  connect6(req: unknown, address: string, port: number): number
  useUserBuffer(buf: Uint8Array): void
  setNoDelay(on: boolean): number
  readonly writeQueueSize: number
}

/** One passthrough connection on the lean path. The fields mirror `Conn`'s where they mean the same. */
export class LeanConn {
  phase: Phase = Phase.Hello
  reader: import('../core/client-hello.js').ClientHelloReader | null = null
  peeked: Buffer | null = null
  extra: Buffer[] | null = null
  up: TcpHandle | null = null
  route: Route | null = null
  routeStats: RouteStats | null = null
  upstreamIndex = -1
  tried: Set<number> | null = null
  generation: number | undefined = undefined
  deadline = Number.POSITIVE_INFINITY
  seen = 0
  readBuf: Buffer | null = null
  bytesIn = 0
  bytesOut = 0
  clientEof = false
  upEof = false
  /** Writes queued in libuv (not completed at once) on either handle: the handles close only once these are done. */
  pending = 0
  /** Both sides are over (EOF both ways, or an error, or a refusal); the handles close once `pending` is 0. */
  ending = false
  constructor(
    readonly id: number,
    readonly proxy: TcpProxy,
    public client: TcpHandle,
    readonly startedAt: number,
  ) {}

  /** Closes both handles now (errors, timeouts, drain). */
  destroy(): void {
    if (this.phase === Phase.Closed) return
    this.phase = Phase.Closed
    this.client.close()
    if (this.up !== null) this.up.close()
    this.proxy.leanClosed(this)
  }

  /** Closes both handles once nothing is queued for either (a graceful end of the connection). */
  finish(): void {
    this.ending = true
    if (this.pending === 0) this.destroy()
  }
}

let B: LeanBindings

/**
 * Starts relaying an accepted handle: call once `leanBindings()` returned non-null. `noDelaySet`: the listening
 * socket has TCP_NODELAY, which Linux copies to every accepted socket, so no setsockopt is needed here.
 */
export function startLean(c: LeanConn, b: LeanBindings, noDelaySet: boolean): void {
  B = b
  const h = c.client
  h.lean = c
  h.onread = onClientRead
  if (!noDelaySet) h.setNoDelay(true)
  h.readStart()
}

function chunkOf(ab: ArrayBuffer | undefined, n: number): Buffer {
  return Buffer.from(ab as ArrayBuffer, B.state[B.kArrayBufferOffset]!, n)
}

function onClientRead(this: TcpHandle, ab: ArrayBuffer | undefined): void {
  const c = this.lean
  const n = B.state[B.kReadBytesOrError]!
  if (n === 0 || c.phase === Phase.Closed) return
  if (n < 0) {
    if (n !== UV_EOF) {
      c.destroy()
      return
    }
    c.clientEof = true
    if (c.phase === Phase.Relay) {
      if (c.upEof) c.finish()
      else shutdown(c, c.up!)
    } else if (c.phase === Phase.Hello) c.proxy.leanReject(c, RejectReason.ClientClosed, false)
    else if (c.phase === Phase.Closing) c.finish()
    // Connecting: the EOF is forwarded once the upstream is connected
    return
  }
  c.bytesIn += n
  if (c.phase === Phase.Relay) {
    write(c, c.up!, this, chunkOf(ab, n))
  } else if (c.phase === Phase.Hello) {
    c.proxy.hello(c, chunkOf(ab, n))
  } else if (c.phase === Phase.Connecting) {
    // kept for the upstream; reading stops until then, so at most one more read is held
    const chunk = chunkOf(ab, n)
    if (c.extra === null) c.extra = [chunk]
    else c.extra.push(chunk)
    this.readStop()
  }
  // Closing (refused, alert sent): what the client sends is dropped
}

function onUpRead(this: TcpHandle, _ab: ArrayBuffer | undefined): void {
  const c = this.lean
  const n = B.state[B.kReadBytesOrError]!
  if (n === 0 || c.phase === Phase.Closed || c.up !== this) return
  if (n < 0) {
    if (n !== UV_EOF) {
      c.destroy()
      return
    }
    c.upEof = true
    if (c.clientEof) c.finish()
    else shutdown(c, c.client)
    return
  }
  c.bytesOut += n
  // the upstream reads into c.readBuf (useUserBuffer): a write that cannot complete at once keeps pointing into
  // it, so the upstream stops reading until that write is done (afterWrite resumes it)
  write(c, c.client, this, c.readBuf!.subarray(B.state[B.kArrayBufferOffset]!, B.state[B.kArrayBufferOffset]! + n))
}

interface LeanWrite {
  handle: TcpHandle
  oncomplete: (this: LeanWrite, status: number) => void
  conn: LeanConn
  from: TcpHandle | null
  buffer: Uint8Array
  async: boolean
}

function afterWrite(this: LeanWrite, status: number): void {
  const c = this.conn
  c.pending--
  if (status < 0) {
    c.destroy()
    return
  }
  if (c.phase === Phase.Closed) return
  if (c.ending) {
    if (c.pending === 0) c.destroy()
    return
  }
  const from = this.from
  if (from !== null && this.handle.writeQueueSize < WRITE_HIGH_WATER && c.phase === Phase.Relay) from.readStart()
}

/**
 * A write request object for the next write. A write that completes at once (nearly all of them) leaves its
 * request unbound (the binding ties a request to a native write only when libuv queues it), so that object
 * serves the next write too: one request object per queued write instead of one per write.
 */
let spare: LeanWrite | null = null

/** Writes `buf` to `to`; when libuv queues it, `from` (the side it came from) stops reading until it is written. */
function write(c: LeanConn, to: TcpHandle, from: TcpHandle | null, buf: Uint8Array): void {
  const req = spare ?? (new B.WriteWrap() as LeanWrite)
  spare = null
  req.handle = to
  req.oncomplete = afterWrite
  req.conn = c
  req.from = from
  req.buffer = buf
  const err = to.writeBuffer(req, buf)
  if (err === 0 && B.state[B.kLastWriteWasAsync] === 0) {
    req.buffer = EMPTY
    req.from = null
    spare = req
    return
  }
  if (err !== 0) {
    c.destroy()
    return
  }
  c.pending++
  // a queued write into the upstream's read buffer must be done before the next read reuses it
  if (from !== null && (from === c.up || to.writeQueueSize >= WRITE_HIGH_WATER)) from.readStop()
}

function afterShutdown(this: { conn: LeanConn }, status: number): void {
  if (status < 0) this.conn.destroy()
}

function shutdown(c: LeanConn, h: TcpHandle): void {
  const req = new B.ShutdownWrap()
  req.handle = h
  req.conn = c
  req.oncomplete = afterShutdown
  if (h.shutdown(req) !== 0) c.destroy()
}

/** Sends the refusal alert, half-closes, and waits (up to the linger deadline) for the client to close. */
export function sendAlert(c: LeanConn, alert: Buffer): void {
  write(c, c.client, null, alert)
  if (c.phase !== Phase.Closed) shutdown(c, c.client)
}

function afterConnect(this: { conn: LeanConn; handle: TcpHandle }, status: number): void {
  const c = this.conn
  if (c.up !== this.handle || c.phase !== Phase.Connecting) {
    this.handle.close()
    return
  }
  if (status < 0) {
    c.proxy.failover(c, `connect error ${status}`)
    return
  }
  c.proxy.leanConnected(c)
}

/** Dials `u` for `c` on a new handle reading into `c.readBuf`; a synchronous failure fails over at once. */
export function connectUpstream(c: LeanConn, u: Upstream, address: string, family: number): void {
  const up = new B.TCP(B.SOCKET) as TcpHandle
  up.lean = c
  up.onread = onUpRead
  up.useUserBuffer(c.readBuf!)
  c.up = up
  const req = new B.TCPConnectWrap()
  req.oncomplete = afterConnect
  req.conn = c
  req.handle = up
  req.address = address
  req.port = u.port
  const err = family === 6 ? up.connect6(req, address, u.port) : up.connect(req, address, u.port)
  if (err !== 0) c.proxy.failover(c, `connect error ${err}`)
}

/** The upstream is connected: hands it the peeked ClientHello and what came after it, then relays both ways. */
export function relay(c: LeanConn): void {
  const up = c.up!
  up.setNoDelay(true)
  if (c.peeked !== null) write(c, up, null, c.peeked)
  c.peeked = null
  if (c.extra !== null) for (const b of c.extra) write(c, up, null, b)
  c.extra = null
  if (c.phase === Phase.Closed) return
  if (c.clientEof) shutdown(c, up)
  up.readStart()
  if (!c.clientEof) c.client.readStart()
}

/** The sweep's verdict on one lean connection (as `expire` in connection.ts for `Conn`). */
export function expireLean(c: LeanConn, now: number, idleTimeoutMs: number): void {
  if (!deadlinePassed(c, now, idleTimeoutMs, c.bytesIn + c.bytesOut)) return
  if (c.phase === Phase.Hello) c.proxy.leanReject(c, RejectReason.HelloTimeout, false)
  else if (c.phase === Phase.Connecting && c.up !== null) c.proxy.failover(c, 'connect timeout')
  else c.destroy()
}
