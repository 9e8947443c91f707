import { connect, type PeerCertificate, type TLSSocket } from 'node:tls'

/**
 * `zonegate probe`: opens one TLS connection with a chosen SNI (through an egress, or straight to an
 * upstream) and reports what answered: the handshake outcome, how it failed (refused, closed, reset, TLS
 * alert, timeout), the peer certificate, TLS version, ALPN and timings; optionally (default on) one HTTP/1.1
 * request whose `upstream:` response header (the demo upstreams send it) or first body line is the answer.
 */

export const ProbeOutcome = {
  Connected: 'connected',
  Refused: 'refused',
  Closed: 'closed',
  Reset: 'reset',
  Alert: 'alert',
  TlsError: 'tls-error',
  Untrusted: 'untrusted',
  Timeout: 'timeout',
  Error: 'error',
} as const
export type ProbeOutcome = (typeof ProbeOutcome)[keyof typeof ProbeOutcome]

export interface ProbeOptions {
  host: string
  port: number
  sni: string
  /** Whole probe budget: connect + handshake + answer (ms). */
  timeoutMs: number
  /** Verify the peer certificate (default false: the mesh's certificates are not in the system store). */
  verify?: boolean
  /** PEM CA bundle used when verifying. */
  ca?: string
  /** ALPN protocols offered (none when empty). */
  alpn?: string[]
  /** Send `GET / HTTP/1.1` after the handshake and report the answer (default true). */
  request?: boolean
  /**
   * Mesh mode: a client certificate and key (PEM) to present, as a sidecar does towards the egress. The
   * egress is then expected to answer: a connection closed after the handshake without an answer is a
   * refusal (`closed`, exit 1), and `--verify` checks the egress's SAN `spiffe://<mesh>/zone-egress` (mesh
   * from the SNI's `{mesh=…}`) against `ca` instead of a host name.
   */
  cert?: string
  key?: string
  /** Send these bytes after the handshake instead of the HTTP request, and report what came back. */
  send?: string
}

export interface ProbePeer {
  subject: string
  issuer: string
  san: string
  validTo: string
  fingerprint256: string
}

export interface ProbeResult {
  target: string
  sni: string
  outcome: ProbeOutcome
  /** True when a TLS handshake completed (exit 0). */
  handshake: boolean
  /** How it failed, e.g. `unrecognized_name`, `ECONNREFUSED`; empty on success. */
  detail: string
  connectMs?: number
  handshakeMs?: number
  tlsVersion?: string
  alpn?: string
  cipher?: string
  peer?: ProbePeer
  /** Whether the certificate verified against the CA / system store, and why not. */
  authorized?: boolean
  authorizationError?: string
  /** HTTP status line and the `upstream` header or first body line, when a request was sent. */
  status?: string
  answer?: string
  /** With `send`: everything received (up to 64 KiB) as text. */
  received?: string
}

/** The mesh of a tag SNI `svc{…,mesh=M,…}`, if any. Pure. */
export function meshOfSni(sni: string): string | undefined {
  const m = /[{,]mesh=([^,}]+)[,}]/.exec(sni)
  return m?.[1]
}

/** Node's checkServerIdentity for mesh mode: the egress must carry `spiffe://<mesh>/zone-egress`. Pure. */
export function egressIdentityCheck(mesh: string | undefined) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    const sans = (cert.subjectaltname ?? '').split(', ')
    const ok =
      mesh === undefined
        ? sans.some((s) => s.startsWith('URI:spiffe://'))
        : sans.includes(`URI:spiffe://${mesh}/zone-egress`)
    return ok ? undefined : new Error(`certificate lacks SAN spiffe://${mesh ?? '<mesh>'}/zone-egress`)
  }
}

const dn = (o: Record<string, unknown> | undefined): string =>
  o
    ? Object.entries(o)
        .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`)
        .join(', ')
    : ''

function peerOf(cert: PeerCertificate): ProbePeer | undefined {
  if (!cert || Object.keys(cert).length === 0) return undefined
  return {
    subject: dn(cert.subject as unknown as Record<string, unknown>),
    issuer: dn(cert.issuer as unknown as Record<string, unknown>),
    san: cert.subjectaltname ?? '',
    validTo: cert.valid_to,
    fingerprint256: cert.fingerprint256,
  }
}

/**
 * Classifies a socket/TLS error into an outcome and a detail: `ECONNREFUSED` → refused; the peer closing
 * before the handshake → closed; `read ECONNRESET` → reset; an OpenSSL alert code
 * (`ERR_SSL_TLSV1_UNRECOGNIZED_NAME`, `ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE`) → alert with the alert name;
 * another OpenSSL error → tls-error. Pure.
 */
export function classifyTlsError(err: NodeJS.ErrnoException): { outcome: ProbeOutcome; detail: string } {
  const code = err.code ?? ''
  if (code === 'ECONNREFUSED') return { outcome: ProbeOutcome.Refused, detail: code }
  if (/disconnected before secure TLS/i.test(err.message) || code === 'EPIPE')
    return { outcome: ProbeOutcome.Closed, detail: 'connection closed before the TLS handshake' }
  if (code === 'ECONNRESET') return { outcome: ProbeOutcome.Reset, detail: 'connection reset' }
  if (code.startsWith('ERR_SSL_')) {
    const name = code
      .slice('ERR_SSL_'.length)
      .replace(/^(TLSV1|TLSV13|SSLV3)_/, '')
      .replace(/^ALERT_/, '')
      .toLowerCase()
    const isAlert = /alert/i.test(err.message) || /^ERR_SSL_(TLSV1|TLSV13|SSLV3)_/.test(code)
    return { outcome: isAlert ? ProbeOutcome.Alert : ProbeOutcome.TlsError, detail: name }
  }
  return { outcome: ProbeOutcome.Error, detail: code || err.message }
}

/** Status line and answer of an HTTP/1.1 response prefix (`upstream:` header, else first body line). Pure. */
export function parseAnswer(raw: string): { status?: string; answer?: string } {
  const headEnd = raw.indexOf('\r\n\r\n')
  const head = headEnd >= 0 ? raw.slice(0, headEnd) : raw
  const lines = head.split('\r\n')
  const status = lines[0]?.startsWith('HTTP/') ? lines[0] : undefined
  if (!status) return { answer: raw.split('\n')[0]?.trim() || undefined }
  const upstream = lines.find((l) => /^upstream:/i.test(l))
  if (upstream) return { status, answer: upstream.slice(upstream.indexOf(':') + 1).trim() }
  const body =
    headEnd >= 0
      ? raw
          .slice(headEnd + 4)
          .split('\n')[0]
          ?.trim()
      : undefined
  return { status, answer: body || undefined }
}

/**
 * Runs one probe. Never rejects: every failure is a result with `handshake: false`. With `verify`, a
 * certificate that does not verify ends as `untrusted` (handshake false). Bounded by `timeoutMs`.
 */
export function probe(opts: ProbeOptions): Promise<ProbeResult> {
  const started = performance.now()
  const since = () => Math.round((performance.now() - started) * 10) / 10
  const base: ProbeResult = {
    target: `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`,
    sni: opts.sni,
    outcome: ProbeOutcome.Error,
    handshake: false,
    detail: '',
  }
  const meshMode = opts.cert !== undefined
  return new Promise((resolve) => {
    let result: ProbeResult = base
    let settled = false
    let response = ''
    const done = (patch: Partial<ProbeResult>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      result = { ...result, ...patch }
      if (response)
        result = opts.send !== undefined ? { ...result, received: response } : { ...result, ...parseAnswer(response) }
      // An egress terminating mesh mTLS (its certificate is a zone-egress identity) closes a refused caller
      // right after the handshake: without an answer, that is a refusal, not a connection.
      const egressTerminated = meshMode || /spiffe:\/\/[^/,]+\/zone-egress/.test(result.peer?.san ?? '')
      if (
        egressTerminated &&
        result.handshake &&
        !response &&
        (opts.request !== false || opts.send !== undefined) &&
        result.outcome === ProbeOutcome.Connected
      ) {
        result = {
          ...result,
          outcome: ProbeOutcome.Closed,
          handshake: false,
          detail: meshMode
            ? 'closed after the TLS handshake without an answer (the egress refused the certificate or the caller)'
            : 'closed after the TLS handshake without an answer (the egress terminates this route with mesh mTLS: present a workload certificate with --cert/--key)',
        }
      }
      socket.destroy()
      resolve(result)
    }
    const socket: TLSSocket = connect({
      host: opts.host,
      port: opts.port,
      servername: opts.sni,
      rejectUnauthorized: false,
      ca: opts.ca,
      ALPNProtocols: opts.alpn && opts.alpn.length > 0 ? opts.alpn : meshMode ? ['kuma'] : undefined,
      ...(meshMode
        ? { cert: opts.cert, key: opts.key, checkServerIdentity: egressIdentityCheck(meshOfSni(opts.sni)) }
        : {}),
    })
    const timer = setTimeout(() => {
      if (result.handshake) done({})
      else
        done({
          outcome: ProbeOutcome.Timeout,
          detail: `no ${result.connectMs === undefined ? 'TCP connection' : 'TLS handshake'} within ${opts.timeoutMs} ms`,
        })
    }, opts.timeoutMs)
    socket.once('connect', () => {
      result = { ...result, connectMs: since() }
    })
    socket.once('secureConnect', () => {
      const cipher = socket.getCipher()
      result = {
        ...result,
        outcome: ProbeOutcome.Connected,
        handshake: true,
        handshakeMs: since(),
        tlsVersion: socket.getProtocol() ?? undefined,
        alpn: socket.alpnProtocol || undefined,
        cipher: cipher?.name,
        peer: peerOf(socket.getPeerCertificate()),
        authorized: socket.authorized,
        authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined,
      }
      if (opts.verify && !socket.authorized) {
        done({ outcome: ProbeOutcome.Untrusted, handshake: false, detail: result.authorizationError ?? 'not trusted' })
        return
      }
      if (opts.send !== undefined) {
        socket.write(opts.send)
        return
      }
      if (opts.request === false) {
        done({})
        return
      }
      socket.write(`GET / HTTP/1.1\r\nHost: ${opts.sni}\r\nUser-Agent: zonegate-probe\r\nConnection: close\r\n\r\n`)
    })
    socket.on('data', (chunk: Buffer) => {
      response += chunk.toString('latin1')
      if (
        response.length > 65536 ||
        (opts.send === undefined && response.includes('\r\n\r\n') && /\r\nupstream:/i.test(response))
      )
        done({})
    })
    const closed = () =>
      done(
        result.handshake ? {} : { outcome: ProbeOutcome.Closed, detail: 'connection closed before the TLS handshake' },
      )
    socket.once('end', closed)
    socket.once('close', closed)
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (result.handshake) done({})
      else done(classifyTlsError(err))
    })
  })
}

/** The text report: a headline (`connected  127.0.0.1:15200  sni orders{mesh=default}`) and detail lines. Pure. */
export function formatProbeResult(r: ProbeResult): string[] {
  const ms = (v: number | undefined) => (v === undefined ? '-' : `${v} ms`)
  if (!r.handshake) {
    const how = r.outcome === ProbeOutcome.Alert ? `TLS alert ${r.detail}` : r.detail
    const lines = [`${r.outcome}  ${r.target}  sni ${r.sni}  (${how})`]
    if (r.peer) lines.push(`  peer      ${r.peer.subject}  issuer ${r.peer.issuer}`)
    return lines
  }
  const lines = [
    `connected  ${r.target}  sni ${r.sni}`,
    `  tls       ${r.tlsVersion ?? '?'}  ${r.cipher ?? ''}  alpn ${r.alpn ?? '-'}  tcp ${ms(r.connectMs)}  handshake ${ms(r.handshakeMs)}`,
  ]
  if (r.peer) {
    const trust = r.authorized ? 'verified' : `not verified: ${r.authorizationError ?? '?'}`
    lines.push(`  peer      ${r.peer.subject}  san ${r.peer.san || '-'}  issuer ${r.peer.issuer}  (${trust})`)
  }
  if (r.status !== undefined || r.answer !== undefined)
    lines.push(`  answer    ${r.answer ?? '-'}${r.status ? `  (${r.status})` : ''}`)
  if (r.received !== undefined) lines.push(`  received  ${JSON.stringify(r.received.slice(0, 2000))}`)
  return lines
}
