// node-raw: an EXPERIMENT, not the product. The same SNI passthrough as node-ref, written on Node's internal
// libuv handles (`process.binding('tcp_wrap')`, `stream_wrap`) instead of `net.Socket`, to measure how much of the
// egress's per-connection cost is the public `net` stream layer (issue 15: bare connections cost the egress ~2.2×
// HAProxy's CPU). No `net.Socket`, no streams, no EventEmitter per connection: one plain object per connection,
// module-level callbacks, Node's per-read buffers, one sweep timer for every deadline.
// It keeps what the egress's bare path has to keep: a hello deadline, a connect timeout, an idle timeout,
// backpressure (stop reading when the peer's write queue is over 64 KiB), half-close in both directions.
// Internal bindings are undocumented and change between Node majors; that is why this is only a measurement.
//   node benchmarks/peers/node-raw.js ROUTES.json 127.0.0.1:PORT        (routes.json as node-ref reads it)
import { parseSni, peerSetup } from './sni-peer.js'

const { TCP, TCPConnectWrap, constants: TCPConstants } = process.binding('tcp_wrap')
const { WriteWrap, ShutdownWrap, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync, streamBaseState } =
  process.binding('stream_wrap')

const UV_EOF = -4095
const HELLO_MS = 5000
const CONNECT_MS = 5000
const IDLE_MS = 60000
const HIGH_WATER = 64 * 1024

const { routes, listen, host, port } = peerSetup('node-raw')

const HELLO = 0
const CONNECTING = 1
const RELAY = 2
const CLOSED = 3

/** Open connections, for the sweep. */
const open = new Set()

function newConn(client) {
  return {
    client,
    up: null,
    phase: HELLO,
    hello: null,
    deadline: performance.now() + HELLO_MS,
    seen: 0,
    bytes: 0,
    clientEof: false,
    upEof: false,
    closing: 0,
  }
}

function close(c) {
  if (c.phase === CLOSED) return
  c.phase = CLOSED
  open.delete(c)
  c.client.close()
  if (c.up !== null) c.up.close()
}

function afterWrite(status) {
  // `this` is the WriteWrap; its connection and the handle to resume are on it
  const c = this.conn
  if (status < 0) return close(c)
  if (c.phase === CLOSED) return
  const from = this.from
  if (this.handle.writeQueueSize < HIGH_WATER) from.readStart()
}

function write(c, to, from, buf) {
  const req = new WriteWrap()
  req.handle = to
  req.oncomplete = afterWrite
  req.conn = c
  req.from = from
  req.buffer = buf
  const err = to.writeBuffer(req, buf)
  if (err !== 0) return close(c)
  if (streamBaseState[kLastWriteWasAsync] && to.writeQueueSize >= HIGH_WATER) from.readStop()
}

function afterShutdown() {}

function shutdown(h) {
  const req = new ShutdownWrap()
  req.handle = h
  req.oncomplete = afterShutdown
  h.shutdown(req)
}

function onClientRead(ab) {
  const c = this.conn
  const n = streamBaseState[kReadBytesOrError]
  if (n === 0) return
  if (n < 0) {
    if (n !== UV_EOF || c.phase !== RELAY) return close(c)
    c.clientEof = true
    if (c.upEof) return close(c)
    return shutdown(c.up)
  }
  const buf = Buffer.from(ab, streamBaseState[kArrayBufferOffset], n)
  c.bytes += n
  if (c.phase === RELAY) return write(c, c.up, this, buf)
  if (c.phase === HELLO) {
    c.hello = c.hello === null ? buf : Buffer.concat([c.hello, buf])
    const sni = parseSni(c.hello)
    if (sni === undefined) return
    const route = sni === null ? undefined : routes.get(sni.toLowerCase())
    if (route === undefined) return close(c)
    this.readStop()
    const u = route.upstreams[route.next++ % route.upstreams.length]
    const up = new TCP(TCPConstants.SOCKET)
    up.conn = c
    up.onread = onUpRead
    c.up = up
    c.phase = CONNECTING
    c.deadline = performance.now() + CONNECT_MS
    const req = new TCPConnectWrap()
    req.oncomplete = afterConnect
    req.conn = c
    req.address = u.host
    req.port = u.port
    const err = up.connect(req, u.host, u.port)
    if (err !== 0) close(c)
  }
}

function afterConnect(status) {
  const c = this.conn
  if (c.phase !== CONNECTING) return
  if (status < 0) return close(c)
  c.phase = RELAY
  c.deadline = performance.now() + IDLE_MS
  const hello = c.hello
  c.hello = null
  write(c, c.up, c.client, hello)
  c.up.readStart()
  c.client.readStart()
}

function onUpRead(ab) {
  const c = this.conn
  const n = streamBaseState[kReadBytesOrError]
  if (n === 0) return
  if (n < 0) {
    if (n !== UV_EOF) return close(c)
    c.upEof = true
    if (c.clientEof) return close(c)
    return shutdown(c.client)
  }
  c.bytes += n
  write(c, c.client, this, Buffer.from(ab, streamBaseState[kArrayBufferOffset], n))
}

function onConnection(err, client) {
  if (err) return
  const c = newConn(client)
  client.conn = c
  client.onread = onClientRead
  open.add(c)
  client.readStart()
}

setInterval(() => {
  const now = performance.now()
  for (const c of open) {
    if (c.phase === RELAY && c.bytes !== c.seen) {
      c.seen = c.bytes
      c.deadline = now + IDLE_MS
    } else if (now >= c.deadline) close(c)
  }
}, 1000).unref()

const server = new TCP(TCPConstants.SERVER)
const bindErr = server.bind(host, port)
if (bindErr !== 0) throw new Error(`node-raw: bind ${listen}: ${bindErr}`)
server.onconnection = onConnection
const listenErr = server.listen(511)
if (listenErr !== 0) throw new Error(`node-raw: listen ${listen}: ${listenErr}`)
console.log(`node-raw listening on ${listen}`)
setInterval(() => {}, 1 << 30)
process.on('SIGTERM', () => process.exit(0))
