// node-raw: an EXPERIMENT, not the product. The same SNI passthrough as node-ref, written on Node's internal
// libuv handles (`process.binding('tcp_wrap')`, `stream_wrap`) instead of `net.Socket`, to measure how much of the
// egress's per-connection cost is the public `net` stream layer (issue 15: bare connections cost the egress ~2.2×
// HAProxy's CPU). No `net.Socket`, no streams, no EventEmitter per connection: one plain object per connection,
// module-level callbacks, one shared read buffer per direction-less pool, one sweep timer for every deadline.
// It keeps what the egress's bare path has to keep: a hello deadline, a connect timeout, an idle timeout,
// backpressure (stop reading when the peer's write queue is over 64 KiB), half-close in both directions.
// Internal bindings are undocumented and change between Node majors; that is why this is only a measurement.
//   node benchmarks/peers/node-raw.js ROUTES.json 127.0.0.1:PORT        (routes.json as node-ref reads it)
import { readFileSync } from 'node:fs'

const { TCP, TCPConnectWrap, constants: TCPConstants } = process.binding('tcp_wrap')
const { WriteWrap, ShutdownWrap, kReadBytesOrError, kArrayBufferOffset, kLastWriteWasAsync, streamBaseState } =
  process.binding('stream_wrap')

const UV_EOF = -4095
const HELLO_MS = 5000
const CONNECT_MS = 5000
const IDLE_MS = 60000
const HIGH_WATER = 64 * 1024

const [routesFile, listen] = process.argv.slice(2)
if (!routesFile || !listen) {
  console.error('usage: node-raw.js ROUTES.json HOST:PORT')
  process.exit(2)
}
const routes = new Map()
for (const r of JSON.parse(readFileSync(routesFile, 'utf8')).routes) {
  routes.set(r.sni.toLowerCase(), {
    next: 0,
    upstreams: r.upstreams.map((u) => {
      const i = u.lastIndexOf(':')
      return { host: u.slice(0, i), port: Number(u.slice(i + 1)) }
    }),
  })
}

// server_name of a complete first record; null: no SNI / not a ClientHello; undefined: need more bytes.
function parseSni(buf) {
  if (buf.length < 5) return undefined
  if (buf[0] !== 22 || buf[1] !== 3) return null
  const recLen = (buf[3] << 8) | buf[4]
  if (recLen > 16384) return null
  if (buf.length < 5 + recLen) return undefined
  const end = 5 + recLen
  let p = 5
  if (buf[p] !== 1) return null
  p += 4 + 2 + 32
  if (p + 1 > end) return null
  p += 1 + buf[p]
  if (p + 2 > end) return null
  p += 2 + ((buf[p] << 8) | buf[p + 1])
  if (p + 1 > end) return null
  p += 1 + buf[p]
  if (p + 2 > end) return null
  const extEnd = Math.min(end, p + 2 + ((buf[p] << 8) | buf[p + 1]))
  p += 2
  while (p + 4 <= extEnd) {
    const type = (buf[p] << 8) | buf[p + 1]
    const len = (buf[p + 2] << 8) | buf[p + 3]
    p += 4
    if (type === 0 && p + 5 <= extEnd) {
      const nameLen = (buf[p + 3] << 8) | buf[p + 4]
      if (buf[p + 2] !== 0 || p + 5 + nameLen > extEnd) return null
      return buf.toString('ascii', p + 5, p + 5 + nameLen)
    }
    p += len
  }
  return null
}

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

function shutdown(c, h) {
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
    return shutdown(c, c.up)
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
    return shutdown(c, c.client)
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

const i = listen.lastIndexOf(':')
const server = new TCP(TCPConstants.SERVER)
const bindErr = server.bind(listen.slice(0, i), Number(listen.slice(i + 1)))
if (bindErr !== 0) throw new Error(`node-raw: bind ${listen}: ${bindErr}`)
server.onconnection = onConnection
const listenErr = server.listen(511)
if (listenErr !== 0) throw new Error(`node-raw: listen ${listen}: ${listenErr}`)
console.log(`node-raw listening on ${listen}`)
setInterval(() => {}, 1 << 30)
process.on('SIGTERM', () => process.exit(0))
