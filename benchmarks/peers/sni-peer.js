// What the node-ref and node-raw benchmark peers share: their command line, the routes file and the SNI parser.
import { readFileSync } from 'node:fs'

/** `node <peer>.js ROUTES.json HOST:PORT` → the routes by lower-cased SNI and where to listen. */
export function peerSetup(name) {
  const [routesFile, listen] = process.argv.slice(2)
  if (!routesFile || !listen) {
    console.error(`usage: ${name}.js ROUTES.json HOST:PORT`)
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
  const i = listen.lastIndexOf(':')
  return { routes, listen, host: listen.slice(0, i), port: Number(listen.slice(i + 1)) }
}

// Returns the server_name, null when the record is complete but has no SNI or is not a ClientHello, undefined when
// more bytes are needed. Only the first record is read.
export function parseSni(buf) {
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
