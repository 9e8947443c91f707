import { createPublicKey, webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { EGRESS_KUMA_URI, egressSpiffeId } from '../../schemas/certs.js'

/**
 * The egress's own key pair and its certificate signing requests. The key is an ECDSA P-256 key made with
 * Node's WebCrypto in this process (it is stored only in `--state-dir`, mode 0600, and never sent anywhere);
 * CSRs are PKCS#10 built with @peculiar/x509 (no hand-written ASN.1).
 */

x509.cryptoProvider.set(webcrypto as unknown as Crypto)

const ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const

export interface EgressKey {
  /** PKCS#8 PEM of the private key (for the TLS context and the state dir; never logged). */
  readonly privateKeyPem: string
  /** SPKI DER of the public key, to check that an issued certificate is for this key. */
  readonly publicKeyDer: Buffer
  readonly keys: CryptoKeyPair
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64')
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`
}

/** Generates a new P-256 key pair. */
export async function generateEgressKey(): Promise<EgressKey> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)
  const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey)
  return { privateKeyPem: pem('PRIVATE KEY', pkcs8), publicKeyDer: Buffer.from(spki), keys }
}

/** Loads a key saved by `generateEgressKey` (PKCS#8 PEM). Rejects when it is not a P-256 private key. */
export async function importEgressKey(privateKeyPem: string): Promise<EgressKey> {
  const spki = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'der' })
  const b64 = privateKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')
  const privateKey = await webcrypto.subtle.importKey('pkcs8', Buffer.from(b64, 'base64'), ALG, true, ['sign'])
  const publicKey = await webcrypto.subtle.importKey('spki', spki, ALG, true, ['verify'])
  return { privateKeyPem, publicKeyDer: spki, keys: { privateKey, publicKey } }
}

/**
 * A PKCS#10 CSR (PEM) for the egress identity in `mesh`: subject `CN=zone-egress`, URI SANs
 * `spiffe://<mesh>/zone-egress` and `kuma://kuma.io/service/zone-egress`, signed with the egress key.
 */
export async function createEgressCsr(key: EgressKey, mesh: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=zone-egress',
    keys: key.keys,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: egressSpiffeId(mesh) },
        { type: 'url', value: EGRESS_KUMA_URI },
      ]),
    ],
  })
  return csr.toString('pem')
}

/** An identity certificate of one mesh, as used and stored. */
export interface MeshCert {
  mesh: string
  /** Leaf certificate, PEM. */
  cert: string
  /** The mesh's CA certificates the reply carried, PEM. */
  caCerts: string[]
  /** Validity, ms since epoch. */
  notBefore: number
  notAfter: number
  serial: string
}

/**
 * Checks an issued certificate against the egress's key and mesh: it must parse, be for this public key,
 * carry the SAN `spiffe://<mesh>/zone-egress`, and not be expired at `now`. Returns the MeshCert or throws
 * an Error saying what is wrong.
 */
export function acceptIssuedCert(
  key: EgressKey,
  mesh: string,
  certPem: string,
  caCerts: string[],
  now: number,
): MeshCert {
  let cert: X509Certificate
  try {
    cert = new X509Certificate(certPem)
  } catch (err) {
    throw new Error(`issued certificate for mesh ${mesh} does not parse: ${(err as Error).message}`)
  }
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' })
  if (!spki.equals(key.publicKeyDer))
    throw new Error(`issued certificate for mesh ${mesh} is not for this egress's key`)
  const want = `URI:${egressSpiffeId(mesh)}`
  if (!(cert.subjectAltName ?? '').split(', ').includes(want))
    throw new Error(`issued certificate for mesh ${mesh} lacks SAN ${egressSpiffeId(mesh)}`)
  const notBefore = Date.parse(cert.validFrom)
  const notAfter = Date.parse(cert.validTo)
  if (!(notAfter > now)) throw new Error(`issued certificate for mesh ${mesh} expired at ${cert.validTo}`)
  return { mesh, cert: certPem, caCerts, notBefore, notAfter, serial: cert.serialNumber }
}
