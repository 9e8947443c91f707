import { constants } from 'node:crypto'
import net, { isIP } from 'node:net'
import tls, { type DetailedPeerCertificate, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls'
import { callerService, clientCertRefusal, MtlsRefusal } from '../core/mesh-mtls.js'
import type { Upstream } from '../core/routing-table.js'
import {
  type Conn,
  type ConnSocket,
  kConn,
  listenClient,
  onUpstreamClose,
  onUpstreamConnect,
  onUpstreamEnd,
  onUpstreamError,
  onUpstreamRead,
  Phase,
  unlistenClient,
} from './connection.js'
import type { TcpProxy } from './tcp-proxy.js'

/**
 * terminate-mtls routes (Kuma's zone egress for ExternalServices): once the ClientHello is read and routed,
 * the egress terminates TLS on the same socket with the identity of the route's mesh (the bytes already read
 * are handed back to the TLS socket, which reads them first), requires a client certificate chaining to the
 * mesh's CA with a URI SAN `spiffe://<mesh>/<service>`, offers ALPN `kuma`, checks the service against the
 * route's `allow`, then dials the upstream plain or with TLS origination (per upstream) and relays with the
 * proxy's usual machinery. Passthrough routes never reach this file.
 */

/** Where the proxy gets the secure context (identity + mesh CA) of a mesh; undefined when it has none yet. */
export interface MeshIdentities {
  contextFor(mesh: string): SecureContext | undefined
}

export const KUMA_ALPN = ['kuma']

const noop = () => {}

/**
 * The chain verification result of a finished server-side handshake: null when the client certificate chains
 * to the context's CA and is within its validity, else OpenSSL's code (`CERT_HAS_EXPIRED`…). Node computes it
 * the same way for sockets of a `tls.Server` (`onServerSocketSecure` reads `_handle.verifyError()`), but
 * fills `authorized`/`authorizationError` only for those; a TLSSocket made on an accepted socket must ask the
 * handle itself. Fails closed when the handle does not offer it.
 */
function verifyErrorOf(t: TLSSocket): string | null {
  const handle = (t as unknown as { _handle?: { verifyError?(): (Error & { code?: string }) | null } })._handle
  if (typeof handle?.verifyError !== 'function') return 'VERIFY_UNAVAILABLE'
  const err = handle.verifyError()
  return err ? (err.code ?? err.message) : null
}

/**
 * Starts the TLS handshake with the caller on `c.client`, replaying `c.peeked`. Refuses (counted) when the
 * egress has no identity for the route's mesh. The outcome arrives on the TLS socket's events.
 */
export function startTermination(proxy: TcpProxy, c: Conn, identities: MeshIdentities | undefined): void {
  const route = c.route!
  const context = identities?.contextFor(route.mesh)
  if (context === undefined) {
    proxy.reject(c, MtlsRefusal.NoIdentity, false)
    return
  }
  const raw = c.client
  unlistenClient(raw)
  raw.pause()
  raw.unshift(c.peeked!)
  c.peeked = null
  const t = new tls.TLSSocket(raw, {
    isServer: true,
    secureContext: context,
    requestCert: true,
    // Verified below, so each failure is counted by its reason; nothing is relayed before that.
    rejectUnauthorized: false,
    ALPNProtocols: KUMA_ALPN,
  }) as unknown as ConnSocket
  raw.on('error', noop)
  t[kConn] = c
  c.client = t
  c.phase = Phase.Handshake
  c.deadline = performance.now() + proxy.options.helloTimeoutMs
  listenClient(t)
  t.on('error', onHandshakeError)
  t.once('secure', onSecure)
}

function onHandshakeError(this: ConnSocket): void {
  const c = this[kConn]
  if (c.phase !== Phase.Handshake) return
  c.phase = Phase.Closing
  c.proxy.stats.reject(MtlsRefusal.HandshakeFailed)
}

/** The handshake finished: check the client certificate and the permission, then dial the upstream. */
function onSecure(this: ConnSocket): void {
  const c = this[kConn]
  if (c.phase !== Phase.Handshake) return
  const t = this as unknown as TLSSocket
  const route = c.route!
  // The X509Certificate wraps the certificate OpenSSL already holds; getPeerCertificate() would copy and
  // re-decode it and build a JS object of every field (~100 µs per connection) to read one string.
  const peer = t.getPeerX509Certificate()
  const service = peer === undefined ? undefined : callerService(peer.subjectAltName, route.mesh)
  const verifyError = verifyErrorOf(t)
  const refusal =
    clientCertRefusal(peer !== undefined, verifyError, service) ??
    (route.allows(service as string) ? undefined : MtlsRefusal.Denied)
  if (refusal !== undefined) {
    c.proxy.refuseTerminated(c, refusal, service)
    return
  }
  c.caller = service as string
  c.proxy.stats.terminated++
  t.pause()
  c.phase = Phase.Connecting
  c.proxy.dial(c)
}

const upstreamContexts = new WeakMap<Upstream, SecureContext>()

/**
 * The client-side context of a TLS upstream, built once per table upstream: trust `caCert` only (Node drops
 * its default roots when `ca` is given), a client certificate only when both `clientCert` and `clientKey` are
 * set, renegotiation refused unless `allowRenegotiation`. Throws on unusable PEM (the dial fails over).
 */
export function upstreamContext(u: Upstream): SecureContext {
  let ctx = upstreamContexts.get(u)
  if (ctx !== undefined) return ctx
  const o = u.tls!
  ctx = tls.createSecureContext({
    ...(o.caCert ? { ca: o.caCert } : {}),
    ...(o.clientCert && o.clientKey ? { cert: o.clientCert, key: o.clientKey } : {}),
    ...(o.allowRenegotiation ? {} : { secureOptions: constants.SSL_OP_NO_RENEGOTIATION }),
  })
  upstreamContexts.set(u, ctx)
  return ctx
}

/** SNI towards a TLS upstream: `serverName`, else its address when that is a DNS name (none for an IP). Pure. */
export function upstreamServerName(u: Pick<Upstream, 'address' | 'tls'>): string | undefined {
  return u.tls?.serverName ?? (isIP(u.address) === 0 ? u.address : undefined)
}

/**
 * Exact server identity check (Envoy's exact `match_subject_alt_names`): a DNS SAN equal to `name`
 * (ASCII case-insensitive, no wildcard expansion) or an IP SAN equal to it. Pure.
 */
export function exactSanCheck(name: string) {
  const want = name.toLowerCase()
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    for (const san of (cert.subjectaltname ?? '').split(', ')) {
      if (san.startsWith('DNS:') && san.slice(4).toLowerCase() === want) return undefined
      if (san.startsWith('IP Address:') && san.slice(11) === name) return undefined
    }
    return new Error(`upstream certificate has no subject alternative name ${name}`)
  }
}

const skipIdentity = () => undefined

/**
 * Node's `tls.connect` hands `checkServerIdentity` the result of `getPeerCertificate(true)`: the whole chain
 * re-decoded into JS objects (~250 µs per connection with OpenSSL 3.0). The checks here read only the SAN
 * string, so the upstream socket answers that call with the SAN of the X509Certificate OpenSSL already holds.
 * Chain verification is untouched (OpenSSL's verify result, read by Node before this call).
 */
function sanOnlyPeerCertificate(this: TLSSocket): DetailedPeerCertificate {
  const san = this.getPeerX509Certificate()?.subjectAltName
  return (san === undefined ? {} : { subjectaltname: san }) as DetailedPeerCertificate
}

/**
 * Dials upstream `u` for a terminated connection: TLS origination when `u.tls` is set (verified against
 * `caCert` when given, exact SAN match unless `skipHostnameVerification`), else plain TCP. Both read into the
 * connection's pooled buffer (`onread`, decision 006), as passthrough does: the caller's TLS socket encrypts
 * what it is given at once (OpenSSL copies it), so the buffer is free again as soon as the write is flushed.
 */
export function dialTerminated(c: Conn, u: Upstream): ConnSocket {
  const onread = { buffer: c.readBuf!, callback: onUpstreamRead as (n: number, buf: Uint8Array) => boolean }
  let s: ConnSocket
  if (u.tls !== undefined) {
    const name = upstreamServerName(u)
    const verify = u.tls.caCert !== undefined
    // `onread` is passed on to the socket by tls.connect (documented there; missing from @types/node 20)
    const options: tls.ConnectionOptions & { allowHalfOpen: boolean; onread: typeof onread } = {
      host: u.address,
      port: u.port,
      allowHalfOpen: true,
      secureContext: upstreamContext(u),
      ...(name === undefined ? {} : { servername: name }),
      rejectUnauthorized: verify,
      checkServerIdentity: !verify || u.tls.skipHostnameVerification ? skipIdentity : exactSanCheck(name ?? u.address),
      onread,
    }
    if (c.proxy.dns !== undefined) options.lookup = c.proxy.dns.lookup // used for host names only (as net.connect)
    s = tls.connect(options) as unknown as ConnSocket
    ;(s as unknown as TLSSocket).getPeerCertificate = sanOnlyPeerCertificate as TLSSocket['getPeerCertificate']
    s.setNoDelay(true)
    s.on('secureConnect', onUpstreamConnect)
  } else {
    const options: net.NetConnectOpts = { host: u.address, port: u.port, allowHalfOpen: true, noDelay: true, onread }
    if (c.proxy.dns !== undefined) options.lookup = c.proxy.dns.lookup // used for host names only (as net.connect)
    s = net.connect(options) as ConnSocket
    s.on('connect', onUpstreamConnect)
  }
  s[kConn] = c
  s.on('end', onUpstreamEnd)
  s.on('error', onUpstreamError)
  s.on('close', onUpstreamClose)
  return s
}
