/**
 * Egress identity over NATS (request/reply on `certSubject(zone)`): an egress instance generates its private key
 * itself and sends a CSR; the reconciler answers with a certificate signed by the mesh's CA carrying the SANs
 * `spiffe://<mesh>/zone-egress` and `kuma://kuma.io/service/zone-egress`. The key never leaves the egress.
 */

/** SPIFFE SAN of the zone egress identity in mesh `mesh`. */
export const egressSpiffeId = (mesh: string) => `spiffe://${mesh}/zone-egress`
export const EGRESS_KUMA_URI = 'kuma://kuma.io/service/zone-egress'
/** SPIFFE SAN of a workload (caller) service in mesh `mesh`. */
export const serviceSpiffeId = (mesh: string, service: string) => `spiffe://${mesh}/${service}`

export interface EgressCertRequest {
  zone: string
  egress: string
  instance: string
  mesh: string
  /** PKCS#10 certificate signing request, PEM. */
  csr: string
}

export type EgressCertReply =
  | {
      ok: true
      /** Leaf certificate, PEM. */
      cert: string
      /** The mesh's CA certificates, PEM (the chain callers verify against). */
      caCerts: string[]
      /** RFC 3339 expiry of `cert`. */
      notAfter: string
    }
  | { ok: false; error: string }
