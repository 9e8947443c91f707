import { writeFile } from 'node:fs/promises'
import net, { type AddressInfo } from 'node:net'
import tls from 'node:tls'
import { generate } from 'selfsigned'
import type { TableRoute, ZoneTable } from '../../schemas/table.js'
import { buildTable, route } from './table.js'

/**
 * Real TLS fixtures for egress tests: upstream TLS servers that announce their name and echo, TLS clients with
 * a chosen SNI, and table envelopes with a correct digest. Everything listens on 127.0.0.1, random ports.
 */

let certs: Promise<{ key: string; cert: string }> | undefined
/** One self-signed certificate per test process, made at test time. */
export function testCert(): Promise<{ key: string; cert: string }> {
  certs ??= generate([{ name: 'commonName', value: 'upstream.test' }], { keySize: 2048 }).then((p) => ({
    key: p.private,
    cert: p.cert,
  }))
  return certs
}

export interface Upstream {
  name: string
  port: number
  /** TCP connections accepted (before any TLS). */
  accepts: number
  /** SNIs seen by the TLS server, in order. */
  snis: string[]
  close(): Promise<void>
}

/** A TLS server that writes `<name>\n` on each connection and then echoes what it receives. */
export async function startUpstream(name: string): Promise<Upstream> {
  const { key, cert } = await testCert()
  const sockets = new Set<net.Socket>()
  const server = tls.createServer({ key, cert }, (s) => {
    up.snis.push((s as tls.TLSSocket & { servername?: string }).servername ?? '')
    s.on('error', () => {})
    s.write(`${name}\n`)
    s.pipe(s)
  })
  server.on('connection', (s) => {
    up.accepts++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.on('tlsClientError', () => {})
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const up: Upstream = {
    name,
    port: (server.address() as AddressInfo).port,
    accepts: 0,
    snis: [],
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
  return up
}

/** A port with nothing listening (bound then released). */
export async function closedPort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

export interface RouteSpec {
  sni: string
  upstreams: { port: number; weight?: number }[]
  mode?: TableRoute['mode']
}

/** A valid envelope (digest computed) for zone-a with one egress entry `ze-a`. */
export function tableOf(
  routes: RouteSpec[],
  generation?: number,
  egress: { port: number; adminPort?: number } = { port: 10002 },
): ZoneTable {
  const tableRoutes = routes
    .map((r) =>
      route(r.sni, 0, {
        mode: r.mode ?? 'passthrough',
        upstreams: r.upstreams.map((u) => ({ address: '127.0.0.1', port: u.port, weight: u.weight ?? 1 })),
      }),
    )
    .sort((a, b) => (a.sni < b.sni ? -1 : 1))
  return buildTable(tableRoutes, {
    egresses: [{ name: 'ze-a', address: '127.0.0.1', ...egress }],
    ...(generation === undefined ? {} : { generation, revision: `main@sha1:${'0'.repeat(40)}` }),
  })
}

export async function writeTable(file: string, table: ZoneTable): Promise<void> {
  await writeFile(file, `${JSON.stringify(table, null, 2)}\n`)
}

export interface TlsResult {
  /** The upstream's name line, or undefined when the connection failed. */
  upstream?: string
  /** The error code when the handshake failed (e.g. ERR_SSL_TLSV1_UNRECOGNIZED_NAME, ECONNRESET). */
  error?: string
  socket?: tls.TLSSocket
}

/** Opens a TLS connection with `sni` (none when undefined) and reads the upstream's name line. */
export function tlsConnect(port: number, sni: string | undefined, keepOpen = false): Promise<TlsResult> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(sni ? { servername: sni } : {}) })
    let buf = ''
    const timer = setTimeout(() => finish({ error: 'timeout' }), 10_000)
    const finish = (r: TlsResult) => {
      clearTimeout(timer)
      s.off('data', onData)
      if (r.upstream !== undefined && keepOpen) resolve({ ...r, socket: s })
      else {
        s.destroy()
        resolve(r)
      }
    }
    const onData = (d: Buffer) => {
      buf += d.toString()
      const nl = buf.indexOf('\n')
      if (nl >= 0) finish({ upstream: buf.slice(0, nl) })
    }
    s.on('data', onData)
    s.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }))
    s.on('close', () => finish({ error: 'closed' }))
  })
}

/** Sends raw bytes over plain TCP and reports what came back and whether the egress closed the socket. */
export function rawExchange(port: number, bytes: Buffer | undefined): Promise<{ received: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    const parts: Buffer[] = []
    const timer = setTimeout(() => {
      s.destroy()
      resolve({ received: Buffer.concat(parts), closed: false })
    }, 5000)
    s.on('connect', () => {
      if (bytes) s.write(bytes)
    })
    s.on('data', (d) => parts.push(d))
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      resolve({ received: Buffer.concat(parts), closed: true })
    })
  })
}
