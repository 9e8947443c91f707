import { type BackoffPolicy, backoffMs } from '../../schemas/backoff.js'

/**
 * Pure rules of the egress's mesh mTLS (terminate-mtls routes, Kuma's zone egress): who the caller is (its
 * SPIFFE SAN), whether a route's `allow` lets it in, and when the egress renews its own certificate.
 * No I/O, no clocks (times are passed in), no randomness (a random number in [0, 1) is passed in).
 */

/** Why a terminate-mtls connection was refused. Bounded: these are the `reason` label values. */
export const MtlsRefusal = {
  /** No identity certificate for the route's mesh yet (never obtained one, none saved). */
  NoIdentity: 'mtls-no-identity',
  /** The TLS handshake itself failed (bad records, protocol or cipher mismatch, client alert). */
  HandshakeFailed: 'mtls-handshake-failed',
  /** The handshake did not finish within the hello deadline. */
  HandshakeTimeout: 'mtls-handshake-timeout',
  /** The client sent no certificate. */
  NoClientCert: 'mtls-no-client-cert',
  /** The client certificate is expired (or not yet valid). */
  ClientCertExpired: 'mtls-client-cert-expired',
  /** The client certificate does not chain to the mesh's CA. */
  ClientCertUntrusted: 'mtls-client-cert-untrusted',
  /** The client certificate has no URI SAN `spiffe://<mesh>/<service>`. */
  WrongMesh: 'mtls-wrong-mesh',
  /** The caller's service is not in the route's `allow` (MeshTrafficPermission). */
  Denied: 'permission-denied',
} as const
export type MtlsRefusal = (typeof MtlsRefusal)[keyof typeof MtlsRefusal]

/**
 * The caller's service from a certificate's SAN string as Node prints it (`URI:spiffe://m/web, DNS:x`):
 * the first URI SAN `spiffe://<mesh>/<service>` whose mesh is `mesh` and whose service is one path segment.
 * Returns undefined when there is none (another mesh's identity, no SPIFFE id). Pure.
 */
export function callerService(subjectAltName: string | undefined, mesh: string): string | undefined {
  if (!subjectAltName) return undefined
  const prefix = `spiffe://${mesh}/`
  for (const raw of subjectAltName.split(', ')) {
    if (!raw.startsWith('URI:')) continue
    let uri = raw.slice(4)
    // Node quotes SAN values holding separators as JSON strings.
    if (uri.startsWith('"')) {
      try {
        uri = JSON.parse(uri) as string
      } catch {
        continue
      }
    }
    if (!uri.startsWith(prefix)) continue
    const service = uri.slice(prefix.length)
    if (service.length > 0 && service.length <= 253 && !/[/\s]/.test(service)) return service
  }
  return undefined
}

/**
 * A route's `allow` / `deny` as a matcher: `undefined` (no list compiled) and `[]` allow nobody (Kuma 2.x: no
 * permission, no access); `["*"]` (or a list holding `*`) allows every service of the mesh; a service in `deny`
 * is refused whatever `allow` says (compile emits `deny` beside `allow: ["*"]`, e.g. Allow Mesh + Deny
 * MeshService `bad`). Pure.
 */
export function allowMatcher(
  allow: readonly string[] | undefined,
  deny: readonly string[] | undefined = undefined,
): (service: string) => boolean {
  if (allow === undefined || allow.length === 0) return () => false
  const denied = new Set(deny ?? [])
  if (allow.includes('*')) return denied.size === 0 ? () => true : (service) => !denied.has(service)
  const set = new Set(allow)
  return (service) => set.has(service) && !denied.has(service)
}

/**
 * The refusal for a finished handshake's client certificate, or undefined when it is acceptable:
 * `hasCert` whether the client sent one; `verifyError` Node's `authorizationError` code (null when the chain
 * verified against the mesh CA); `service` what `callerService` found. Pure.
 */
export function clientCertRefusal(
  hasCert: boolean,
  verifyError: string | null | undefined,
  service: string | undefined,
): MtlsRefusal | undefined {
  if (!hasCert) return MtlsRefusal.NoClientCert
  if (verifyError) {
    return verifyError === 'CERT_HAS_EXPIRED' || verifyError === 'CERT_NOT_YET_VALID'
      ? MtlsRefusal.ClientCertExpired
      : MtlsRefusal.ClientCertUntrusted
  }
  if (service === undefined) return MtlsRefusal.WrongMesh
  return undefined
}

/** Share of a certificate's lifetime after which it is renewed (before jitter). */
export const RENEW_AT = 2 / 3
/** Jitter around the renewal point, as a share of the lifetime (±). */
export const RENEW_JITTER = 0.05

/**
 * Milliseconds from `now` until the certificate valid from `notBefore` to `notAfter` (ms since epoch) should
 * be renewed: at 2/3 of its lifetime ± 5 % jitter (`rand` in [0, 1)), never negative (an overdue certificate
 * renews at once). Pure.
 */
export function renewDelayMs(notBefore: number, notAfter: number, now: number, rand: number): number {
  const lifetime = Math.max(0, notAfter - notBefore)
  const at = notBefore + lifetime * (RENEW_AT + (rand * 2 - 1) * RENEW_JITTER)
  return Math.max(0, Math.round(at - now))
}

/**
 * Retries of a failed certificate request: between half and all of 500 ms doubling to at most 30 s, i.e. 3/4 of
 * it ± 1/3 (schemas/backoff.ts).
 */
export const CERT_RETRY: BackoffPolicy = { baseMs: 375, maxMs: 22_500, jitter: 1 / 3 }

/** Backoff before retry `attempt` (1, 2, …) of a failed certificate request (`rand` in [0, 1)). Pure. */
export function retryDelayMs(attempt: number, rand: number): number {
  return backoffMs(attempt, CERT_RETRY, () => rand)
}
