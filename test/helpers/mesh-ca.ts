import { randomBytes, webcrypto } from 'node:crypto'
import type { NatsConnection } from '@nats-io/transport-node'
import * as x509 from '@peculiar/x509'
import type { EgressCertReply, EgressCertRequest } from '../../schemas/certs.js'
import { EGRESS_KUMA_URI, egressSpiffeId, serviceSpiffeId } from '../../schemas/certs.js'
import { certSubject } from '../../schemas/subjects.js'

/**
 * A mesh CA for tests, made with @peculiar/x509 and WebCrypto at test time: issues workload certificates
 * (URI SAN `spiffe://<mesh>/<service>`, valid or already expired), TLS server certificates for upstreams,
 * and signs egress CSRs the way the reconciler's certificate service does. `serveCertRequests` answers an
 * egress's requests on `certSubject(zone)` over a real NATS connection (until the real reconciler does).
 */

x509.cryptoProvider.set(webcrypto as unknown as Crypto)
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

export interface Issued {
  cert: string
  key: string
}

export interface MeshCa {
  mesh: string
  certPem: string
  /** A workload certificate for `service` (validity in ms around now; negative `untilMs` = expired). */
  issueWorkload(service: string, opts?: { fromMs?: number; untilMs?: number }): Promise<Issued>
  /** A server certificate with DNS/IP SANs (upstream TLS servers). */
  issueServer(names: string[]): Promise<Issued>
  /** Signs an egress CSR: SANs `spiffe://<mesh>/zone-egress` + Kuma's URI, lifetime `lifetimeMs`. */
  signCsr(csrPem: string, lifetimeMs: number): Promise<string>
}

const pemOf = async (k: CryptoKey) =>
  x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', k), 'PRIVATE KEY')
const serial = () =>
  randomBytes(8)
    .toString('hex')
    .replace(/^[89a-f]/, '1')

/** Creates a CA for `mesh` (ECDSA P-256, valid one day). */
export async function createMeshCa(mesh: string): Promise<MeshCa> {
  const caKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair
  const now = Date.now()
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${mesh} test CA,O=zonegate-tests`,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 86_400_000),
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  })
  const issue = async (
    publicKey: CryptoKey | x509.PublicKey,
    subject: string,
    sans: x509.JsonGeneralName[],
    from: number,
    until: number,
    usage: string[],
  ) =>
    (
      await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject,
        issuer: ca.subject,
        notBefore: new Date(from),
        notAfter: new Date(until),
        publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
          new x509.ExtendedKeyUsageExtension(usage),
          new x509.SubjectAlternativeNameExtension(sans),
        ],
      })
    ).toString('pem')
  const leaf = async (subject: string, sans: x509.JsonGeneralName[], from: number, until: number, usage: string[]) => {
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair
    return { cert: await issue(keys.publicKey, subject, sans, from, until, usage), key: await pemOf(keys.privateKey) }
  }
  const serverAuth = '1.3.6.1.5.5.7.3.1'
  const clientAuth = '1.3.6.1.5.5.7.3.2'
  return {
    mesh,
    certPem: ca.toString('pem'),
    issueWorkload: (service, opts = {}) =>
      leaf(
        `CN=${service}`,
        [{ type: 'url', value: serviceSpiffeId(mesh, service) }],
        Date.now() + (opts.fromMs ?? -60_000),
        Date.now() + (opts.untilMs ?? 3600_000),
        [serverAuth, clientAuth],
      ),
    issueServer: (names) =>
      leaf(
        `CN=${names[0]}`,
        names.map((n) => (/^[\d.]+$/.test(n) ? { type: 'ip', value: n } : { type: 'dns', value: n })),
        Date.now() - 60_000,
        Date.now() + 3600_000,
        [serverAuth, clientAuth],
      ),
    async signCsr(csrPem, lifetimeMs) {
      const csr = new x509.Pkcs10CertificateRequest(csrPem)
      if (!(await csr.verify())) throw new Error('CSR signature does not verify')
      return issue(
        await csr.publicKey.export(),
        'CN=zone-egress',
        [
          { type: 'url', value: egressSpiffeId(mesh) },
          { type: 'url', value: EGRESS_KUMA_URI },
        ],
        Date.now() - 1000,
        Date.now() + lifetimeMs,
        [serverAuth, clientAuth],
      )
    },
  }
}

export interface CertResponder {
  /** Requests answered, by mesh. */
  requests: EgressCertRequest[]
  stop(): Promise<void>
}

/**
 * Answers certificate requests of `zone` on `certSubject(zone)` with certificates of the CA of the requested
 * mesh (lifetime `lifetimeMs()`, read per request), or `{ok:false}` for an unknown mesh.
 */
export function serveCertRequests(
  nc: NatsConnection,
  zone: string,
  cas: MeshCa[],
  lifetimeMs: () => number,
): CertResponder {
  const sub = nc.subscribe(certSubject(zone))
  const requests: EgressCertRequest[] = []
  void (async () => {
    for await (const m of sub) {
      const req = m.json<EgressCertRequest>()
      requests.push(req)
      const ca = cas.find((c) => c.mesh === req.mesh)
      let reply: EgressCertReply
      if (ca === undefined) reply = { ok: false, error: `unknown mesh ${req.mesh}` }
      else {
        const lifetime = lifetimeMs()
        const cert = await ca.signCsr(req.csr, lifetime)
        reply = { ok: true, cert, caCerts: [ca.certPem], notAfter: new Date(Date.now() + lifetime).toISOString() }
      }
      m.respond(JSON.stringify(reply))
    }
  })()
  return {
    requests,
    stop: async () => {
      sub.unsubscribe()
    },
  }
}
