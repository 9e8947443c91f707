import * as x509 from '@peculiar/x509'
import { EGRESS_KUMA_URI, egressSpiffeId, serviceSpiffeId } from '../../../schemas/certs.js'
import { CLOCK_SKEW_MS, randomSerial } from './ca.js'
import { exportPrivateKeyPem, type LoadedCa } from './keys.js'

/**
 * Issuing mesh identity certificates: the zone egress's (from its CSR: the key never leaves the egress) and test
 * workload certificates for `zonegate cert issue`. Certificates carry Kuma's SANs and chain to the mesh CA.
 * Pure apart from randomness: the clock is an input.
 */

/** A CSR that cannot be signed; `message` is meant for the `{ok:false, error}` reply. */
export class CsrError extends Error {
  readonly code = 'CsrError'
}

/** Upper bound of a PEM CSR the signer looks at (an RSA-4096 CSR is ~1.7 KiB). */
export const MAX_CSR_PEM_BYTES = 16 * 1024

export interface IssuedCertificate {
  /** PEM leaf certificate. */
  cert: string
  notAfter: Date
}

/** Kuma's `kuma://kuma.io/service/<service>` SAN. */
export const kumaServiceUri = (service: string) => `kuma://kuma.io/service/${service}`

/**
 * Parses and verifies a PEM PKCS#10 CSR: bounded size, exactly one CSR block, a supported public key (RSA ≥ 2048
 * bits, ECDSA P-256/P-384) and a valid self-signature (proof the requester holds the key). Throws CsrError.
 */
export async function verifyCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  if (typeof csrPem !== 'string' || csrPem.length === 0) throw new CsrError('csr is empty')
  if (csrPem.length > MAX_CSR_PEM_BYTES) throw new CsrError(`csr is larger than ${MAX_CSR_PEM_BYTES} bytes`)
  const blocks = csrPem.match(/-----BEGIN CERTIFICATE REQUEST-----/g) ?? []
  if (blocks.length !== 1) throw new CsrError('csr must be exactly one PEM "CERTIFICATE REQUEST" block')
  let csr: x509.Pkcs10CertificateRequest
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem)
  } catch {
    throw new CsrError('csr is not a valid PKCS#10 certificate request')
  }
  const alg = csr.publicKey.algorithm as { name?: string; modulusLength?: number; namedCurve?: string }
  if (alg.name === 'RSASSA-PKCS1-v1_5' || alg.name === 'RSA-PSS' || alg.name === 'RSA-OAEP') {
    if ((alg.modulusLength ?? 0) < 2048) throw new CsrError('csr key: RSA keys must have at least 2048 bits')
  } else if (alg.name === 'ECDSA') {
    if (alg.namedCurve !== 'P-256' && alg.namedCurve !== 'P-384')
      throw new CsrError('csr key: ECDSA keys must use P-256 or P-384')
  } else throw new CsrError(`csr key: unsupported algorithm ${alg.name ?? '?'} (use RSA or ECDSA)`)
  let ok = false
  try {
    ok = await csr.verify()
  } catch {
    ok = false
  }
  if (!ok) throw new CsrError('csr signature does not verify')
  return csr
}

interface LeafOptions {
  ca: LoadedCa
  publicKey: x509.PublicKey | CryptoKey
  commonName: string
  uris: string[]
  lifetimeMs: number
  now: Date
}

async function issueLeaf(o: LeafOptions): Promise<IssuedCertificate> {
  const caNotAfter = o.ca.cert.notAfter.getTime()
  // A leaf never outlives its CA.
  const notAfter = new Date(Math.min(o.now.getTime() + o.lifetimeMs, caNotAfter))
  const ski = o.ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)
  const aki = ski
    ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
    : await x509.AuthorityKeyIdentifierExtension.create(o.ca.cert)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [o.commonName] }],
    issuer: o.ca.cert.subjectName,
    notBefore: new Date(o.now.getTime() - CLOCK_SKEW_MS),
    notAfter,
    publicKey: o.publicKey,
    signingKey: o.ca.key,
    signingAlgorithm: o.ca.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(
        o.uris.map((value) => ({ type: 'url' as const, value })),
        true,
      ),
      aki,
      await x509.SubjectKeyIdentifierExtension.create(o.publicKey),
    ],
  })
  return { cert: `${cert.toString('pem')}\n`, notAfter }
}

export interface SignEgressCsrOptions {
  ca: LoadedCa
  mesh: string
  csr: string
  /** From the mesh's `dpCert.rotation.expiration` (Kuma's default 24h). */
  lifetimeMs: number
  now: Date
}

/**
 * Signs a zone egress's CSR for `mesh`: verifies it (verifyCsr), then issues a leaf with the CSR's public key
 * and SANs `spiffe://<mesh>/zone-egress` + `kuma://kuma.io/service/zone-egress` (whatever the CSR asked for),
 * key usage for TLS server and client, valid from `now` − 5 min until `now + lifetimeMs` (capped at the CA's
 * notAfter), signed by `ca`. Throws CsrError for a bad CSR.
 */
export async function signEgressCsr(o: SignEgressCsrOptions): Promise<IssuedCertificate> {
  const csr = await verifyCsr(o.csr)
  return issueLeaf({
    ca: o.ca,
    publicKey: csr.publicKey,
    commonName: 'zone-egress',
    uris: [egressSpiffeId(o.mesh), EGRESS_KUMA_URI],
    lifetimeMs: o.lifetimeMs,
    now: o.now,
  })
}

export interface IssueWorkloadOptions {
  ca: LoadedCa
  mesh: string
  service: string
  lifetimeMs: number
  now: Date
}

/**
 * A workload (sidecar-like) identity for tests and demos: a fresh ECDSA P-256 key and a leaf with SANs
 * `spiffe://<mesh>/<service>` + `kuma://kuma.io/service/<service>` signed by `ca`. Resolves with PEM cert and
 * PKCS#8 key.
 */
export async function issueWorkloadCertificate(o: IssueWorkloadOptions): Promise<IssuedCertificate & { key: string }> {
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair
  const issued = await issueLeaf({
    ca: o.ca,
    publicKey: keys.publicKey,
    commonName: o.service,
    uris: [serviceSpiffeId(o.mesh, o.service), kumaServiceUri(o.service)],
    lifetimeMs: o.lifetimeMs,
    now: o.now,
  })
  return { ...issued, key: await exportPrivateKeyPem(keys.privateKey) }
}

/**
 * Creates a fresh key and a PKCS#10 CSR for the zone egress of `mesh` (ECDSA P-256; SAN
 * `spiffe://<mesh>/zone-egress`). For tests of the certificate service; the egress has its own.
 */
export async function createEgressCsr(mesh: string): Promise<{ csr: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=zone-egress',
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: egressSpiffeId(mesh) }])],
  })
  return { csr: `${csr.toString('pem')}\n`, key: await exportPrivateKeyPem(keys.privateKey) }
}
