import { X509Certificate } from 'node:crypto'
import net, { type AddressInfo } from 'node:net'
import tls from 'node:tls'
import { tableDigest } from '../../schemas/digest.js'
import type { TableRoute, TableUpstream, ZoneTable } from '../../schemas/table.js'
import type { Issued } from './mesh-ca.js'

/**
 * Real sockets for the terminate-mtls tests: external services (plain TCP and TLS, the TLS one recording
 * the SNI and client certificate it saw), a mesh client that presents a workload certificate like a Kuma
 * sidecar (SNI, ALPN `kuma`, trusts the mesh CA), and table envelopes with `meshes`.
 */

export interface External {
  port: number
  /** TLS servers: the SNI and client-certificate SAN of each accepted handshake. */
  seen: { sni: string; clientSan: string | null }[]
  accepts: number
  close(): Promise<void>
}

function track(server: net.Server | tls.Server, ext: External, sockets: Set<net.Socket>) {
  server.on('connection', (s: net.Socket) => {
    ext.accepts++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
  })
}

async function listen(server: net.Server, ext: External, sockets: Set<net.Socket>): Promise<External> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  ext.port = (server.address() as AddressInfo).port
  ext.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy()
      server.close(() => r())
    })
  return ext
}

/** A plain TCP service that writes `<name>\n` and echoes. */
export function startPlainExternal(name: string): Promise<External> {
  const sockets = new Set<net.Socket>()
  const ext: External = { port: 0, seen: [], accepts: 0, close: async () => {} }
  const server = net.createServer((s) => {
    s.write(`${name}\n`)
    s.pipe(s)
  })
  track(server, ext, sockets)
  return listen(server, ext, sockets)
}

/** A TLS service (cert from `server`) that asks for a client certificate, records it, writes `<name>\n`, echoes. */
export function startTlsExternal(name: string, server: Issued, clientCa?: string): Promise<External> {
  const sockets = new Set<net.Socket>()
  const ext: External = { port: 0, seen: [], accepts: 0, close: async () => {} }
  const srv = tls.createServer(
    {
      key: server.key,
      cert: server.cert,
      requestCert: true,
      rejectUnauthorized: false,
      ...(clientCa ? { ca: clientCa } : {}),
    },
    (s) => {
      const peer = s.getPeerCertificate()
      ext.seen.push({
        sni: (s as tls.TLSSocket & { servername?: string | false }).servername || '',
        clientSan: peer && Object.keys(peer).length > 0 ? (peer.subjectaltname ?? '') : null,
      })
      s.on('error', () => {})
      s.write(`${name}\n`)
      s.pipe(s)
    },
  )
  srv.on('tlsClientError', () => {})
  track(srv, ext, sockets)
  return listen(srv, ext, sockets)
}

export interface MeshCallResult {
  /** The first line the far end sent (the external service's name), when the call went through. */
  answer?: string
  /** The echo of `payload`, when asked. */
  echo?: string
  error?: string
  alpn?: string
  /** SAN of the egress's certificate, and whether it verified against the mesh CA. */
  egressSan?: string
  egressSerial?: string
  authorized?: boolean
}

/**
 * Calls through the egress like a sidecar: TLS with `sni`, ALPN `kuma`, trusting `ca`, presenting `client`
 * (or no certificate); reads the first line; optionally sends `payload` and reads its echo. Never rejects.
 */
export function meshCall(
  port: number,
  sni: string,
  ca: string,
  client: Issued | undefined,
  payload?: string,
  timeoutMs = 10_000,
  mesh = 'default',
): Promise<MeshCallResult> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      servername: sni,
      ca,
      ALPNProtocols: ['kuma'],
      ...(client ? { cert: client.cert, key: client.key } : {}),
      rejectUnauthorized: false,
      // a sidecar checks the egress's SPIFFE id, not a host name
      checkServerIdentity: (_h, cert) =>
        (cert.subjectaltname ?? '').includes(`URI:spiffe://${mesh}/zone-egress`)
          ? undefined
          : new Error(`egress certificate lacks spiffe://${mesh}/zone-egress`),
    })
    const r: MeshCallResult = {}
    let buf = ''
    const timer = setTimeout(() => finish({ error: 'timeout' }), timeoutMs)
    let done = false
    const finish = (patch: MeshCallResult) => {
      if (done) return
      done = true
      clearTimeout(timer)
      s.destroy()
      resolve({ ...r, ...patch })
    }
    s.once('secureConnect', () => {
      r.alpn = s.alpnProtocol || undefined
      r.authorized = s.authorized
      const pc = s.getPeerX509Certificate()
      if (pc) {
        r.egressSan = pc.subjectAltName ?? ''
        r.egressSerial = pc.serialNumber
      }
    })
    s.on('data', (d: Buffer) => {
      buf += d.toString()
      const lines = buf.split('\n')
      if (r.answer === undefined && lines.length > 1) {
        r.answer = lines[0]
        if (payload === undefined) return finish({})
        s.write(`${payload}\n`)
      }
      if (r.answer !== undefined && payload !== undefined && lines.length > 2) finish({ echo: lines[1] })
    })
    s.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }))
    s.on('close', () => finish({ error: r.answer === undefined ? 'closed' : 'closed after answer' }))
  })
}

/** Serial number of a PEM certificate. */
export const serialOf = (pem: string) => new X509Certificate(pem).serialNumber

export interface MtlsRouteSpec {
  sni: string
  service: string
  mode?: TableRoute['mode']
  upstreams: TableUpstream[]
  allow?: string[]
}

/** A valid envelope for zone-a (digest computed) with terminate-mtls routes and the meshes' CAs. */
export function mtlsTable(
  routes: MtlsRouteSpec[],
  meshes: { name: string; caCerts: string[] }[],
  generation: number,
): ZoneTable {
  const body = {
    zone: 'zone-a',
    egresses: [{ name: 'ze-a', address: '127.0.0.1', port: 10002 }],
    routes: routes
      .map((r) => ({
        sni: r.sni,
        mesh: 'default',
        service: r.service,
        kind: (r.mode === 'passthrough' ? 'cross-zone' : 'external') as TableRoute['kind'],
        mode: r.mode ?? ('terminate-mtls' as const),
        upstreams: r.upstreams,
        ...(r.allow ? { allow: r.allow } : {}),
      }))
      .sort((a, b) => (a.sni < b.sni ? -1 : 1)),
  }
  return {
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    generation,
    revision: `main@sha1:${generation.toString(16).padStart(40, '0')}`,
    digest: tableDigest({ ...body, meshes }),
    ...body,
    meshes,
  }
}
