// node-ref: a deliberately naive Node SNI passthrough proxy, the "naive Node net pipe" data point of the
// proxy-throughput benchmark (same role as the reference harness's fixtures/node-sni-proxy.js). Not the product,
// not tuned: Buffer.concat while peeking, default buffers, pipe() both ways.
//   node benchmarks/peers/node-ref.js ROUTES.json 127.0.0.1:PORT
// ROUTES.json: {"routes":[{"sni":"a.test","upstreams":["127.0.0.1:18441"]}, ...]}. Exact, case-insensitive SNI
// match; several upstreams = round robin; unknown SNI / no SNI / not a ClientHello → close without a byte.
import net from 'node:net'
import { parseSni, peerSetup } from './sni-peer.js'

const { routes, listen, host, port } = peerSetup('node-ref')

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

server.listen(port, host, () => console.log(`node-ref listening on ${listen}`))
process.on('SIGTERM', () => process.exit(0))
