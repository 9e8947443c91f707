// node-ref: a deliberately naive Node SNI passthrough proxy, the "naive Node net pipe" data point of the
// proxy-throughput benchmark (same role as the reference harness's fixtures/node-sni-proxy.js). Not the product,
// not tuned: Buffer.concat while peeking, default buffers, pipe() both ways.
//   node benchmarks/peers/node-ref.js ROUTES.json 127.0.0.1:PORT
// ROUTES.json: {"routes":[{"sni":"a.test","upstreams":["127.0.0.1:18441"]}, ...]}. Exact, case-insensitive SNI
// match; several upstreams = round robin; unknown SNI / no SNI / not a ClientHello → close without a byte.
import { readFileSync } from 'node:fs'
import net from 'node:net'

const [routesFile, listen] = process.argv.slice(2)
if (!routesFile || !listen) {
  console.error('usage: node-ref.js ROUTES.json HOST:PORT')
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

// Returns the server_name, null when the record is complete but has no SNI or is not a ClientHello, undefined when
// more bytes are needed. Only the first record is read.
function parseSni(buf) {
  if (buf.length < 5) return undefined
  if (buf[0] !== 22 || buf[1] !== 3) return null
  const recLen = buf.readUInt16BE(3)
  if (recLen > 16384) return null
  if (buf.length < 5 + recLen) return undefined
  const end = 5 + recLen
  let p = 5
  if (buf[p] !== 1) return null
  p += 4 + 2 + 32 // handshake header, version, random
  if (p + 1 > end) return null
  p += 1 + buf[p] // session id
  if (p + 2 > end) return null
  p += 2 + buf.readUInt16BE(p) // cipher suites
  if (p + 1 > end) return null
  p += 1 + buf[p] // compression methods
  if (p + 2 > end) return null
  const extEnd = Math.min(end, p + 2 + buf.readUInt16BE(p))
  p += 2
  while (p + 4 <= extEnd) {
    const type = buf.readUInt16BE(p)
    const len = buf.readUInt16BE(p + 2)
    p += 4
    if (type === 0 && p + 5 <= extEnd) {
      const nameLen = buf.readUInt16BE(p + 3)
      if (buf[p + 2] !== 0 || p + 5 + nameLen > extEnd) return null
      return buf.toString('ascii', p + 5, p + 5 + nameLen)
    }
    p += len
  }
  return null
}

const server = net.createServer((client) => {
  let buf = Buffer.alloc(0)
  const timer = setTimeout(() => client.destroy(), 5000)
  client.on('error', () => client.destroy())
  const onData = (chunk) => {
    buf = Buffer.concat([buf, chunk])
    const sni = parseSni(buf)
    if (sni === undefined) return
    client.removeListener('data', onData)
    clearTimeout(timer)
    const route = sni === null ? undefined : routes.get(sni.toLowerCase())
    if (!route) {
      client.destroy()
      return
    }
    client.pause()
    const up = route.upstreams[route.next++ % route.upstreams.length]
    const upstream = net.connect(up.port, up.host, () => {
      upstream.write(buf)
      client.pipe(upstream)
      upstream.pipe(client)
      client.resume()
    })
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
  }
  client.on('data', onData)
})

const i = listen.lastIndexOf(':')
server.listen(Number(listen.slice(i + 1)), listen.slice(0, i), () => console.log(`node-ref listening on ${listen}`))
process.on('SIGTERM', () => process.exit(0))
