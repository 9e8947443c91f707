import { X509Certificate as NodeX509 } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { exportPrivateKeyPem, KeyError, parsePrivateKeyPem, splitPemCertificates } from './keys.js'

/**
 * Mesh CA backends: creating a `builtin` CA (Kuma's `newRootCa`) and checking a `provided` one (Kuma's
 * `tls.X509KeyPair` + `ValidateCaCert`, with their messages). Pure apart from randomness: the clock is an input.
 */

/** Kuma's defaults for `builtin` backends (`conf.caCert.RSAbits`, `conf.caCert.expiration`). */
export const BUILTIN_CA_DEFAULTS = { rsaBits: 2048, expiration: '10y' } as const
/** Kuma's default `dpCert.rotation.expiration`. */
export const DEFAULT_DP_CERT_EXPIRATION = '24h'
/** Backdating of issued certificates against clock skew between hosts (Kuma uses a few minutes too). */
export const CLOCK_SKEW_MS = 5 * 60_000

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
}

/**
 * Parses Kuma's duration strings (`<int><y|w|d|h|m|s|ms>`, or `0`) into milliseconds; undefined when the
 * string is not one. Pure.
 */
export function parseKumaDuration(s: string): number | undefined {
  if (s === '0') return 0
  const m = /^(\d+)(ms|y|w|d|h|m|s)$/.exec(s)
  if (!m) return undefined
  return Number(m[1]) * (UNITS[m[2] as string] as number)
}

/** A CA's PEM material, as kept in KV `zonegate-ca` (builtin) or read from the repository (provided). */
export interface CaMaterial {
  /** PEM certificate (the CA that signs). */
  cert: string
  /** PKCS#8 PEM private key. Never logged, never published outside the CA bucket. */
  key: string
}

export interface CreateBuiltinCaOptions {
  mesh: string
  /** `conf.caCert.RSAbits` (default 2048). */
  rsaBits?: number
  /** Lifetime in ms (from `conf.caCert.expiration`, default 10y). */
  lifetimeMs?: number
  now: Date
}

/**
 * Creates the self-signed root CA of a `builtin` backend as Kuma does: RSA key of `rsaBits`, subject
 * `O=Kuma, OU=Mesh, CN=<mesh>`, SAN URI `spiffe://<mesh>`, basic constraints CA, key usage keyCertSign +
 * cRLSign + digitalSignature, valid from `now` − skew for `lifetimeMs`. Resolves with PEM cert and PKCS#8 key.
 */
export async function createBuiltinCa(o: CreateBuiltinCaOptions): Promise<CaMaterial> {
  const rsaBits = o.rsaBits && o.rsaBits > 0 ? o.rsaBits : BUILTIN_CA_DEFAULTS.rsaBits
  const lifetimeMs = o.lifetimeMs && o.lifetimeMs > 0 ? o.lifetimeMs : (parseKumaDuration('10y') as number)
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]) }
  const keys = (await crypto.subtle.generateKey({ ...alg, modulusLength: rsaBits }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ O: ['Kuma'] }, { OU: ['Mesh'] }, { CN: [o.mesh] }],
    notBefore: new Date(o.now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(o.now.getTime() + lifetimeMs),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${o.mesh}` }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  return { cert: `${cert.toString('pem')}\n`, key: await exportPrivateKeyPem(keys.privateKey) }
}

/** A positive 128-bit serial number, hex. */
export function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16))
  b[0] = ((b[0] as number) & 0x7f) | 0x01 // positive, no leading zero byte
  return Buffer.from(b).toString('hex')
}

/**
 * Kuma's check of a `provided` CA (`tls.X509KeyPair`, then `ValidateCaCert` on each certificate): returns the
 * problems as messages (empty = usable). Messages follow Kuma: `not a valid TLS key pair: tls: …`, `basic
 * constraint 'CA' must be set to 'true' …`, `key usage extension 'keyCertSign' must be set …`. Synchronous
 * (Node's X.509 parser); never throws; no key material in messages. Pure.
 */
export function checkCaKeyPair(certPem: string, keyPem: string): string[] {
  const blocks = splitPemCertificates(certPem)
  if (blocks.length === 0) return ['not a valid TLS key pair: tls: failed to find any PEM data in certificate input']
  let keyObject: ReturnType<typeof parsePrivateKeyPem>
  try {
    keyObject = parsePrivateKeyPem(keyPem)
  } catch (err) {
    return [`not a valid TLS key pair: tls: ${err instanceof KeyError ? err.message : 'failed to parse private key'}`]
  }
  const certs: NodeX509[] = []
  for (const b of blocks) {
    try {
      certs.push(new NodeX509(b))
    } catch {
      return ['not a valid TLS key pair: x509: malformed certificate']
    }
  }
  const leaf = certs[0] as NodeX509
  let matches = false
  try {
    matches = leaf.checkPrivateKey(keyObject)
  } catch {
    matches = false
  }
  if (!matches) return ['not a valid TLS key pair: tls: private key does not match public key']
  const problems: string[] = []
  if (!leaf.ca) problems.push("basic constraint 'CA' must be set to 'true' (see X509-SVID: 4.1. Basic Constraints)")
  if (!hasCertSign(leaf)) problems.push("key usage extension 'keyCertSign' must be set (see X509-SVID: 4.3. Key Usage)")
  return problems
}

/** keyUsage keyCertSign present (or no keyUsage extension at all, which X.509 reads as "any usage"). */
function hasCertSign(cert: NodeX509): boolean {
  try {
    const parsed = new x509.X509Certificate(cert.raw)
    const ku = parsed.getExtension(x509.KeyUsagesExtension)
    return !ku || (ku.usages & x509.KeyUsageFlags.keyCertSign) !== 0
  } catch {
    return false
  }
}

/** `notAfter` of a PEM certificate, or undefined when it does not parse. Pure. */
export function certificateNotAfter(pem: string): Date | undefined {
  try {
    return new x509.X509Certificate(pem).notAfter
  } catch {
    return undefined
  }
}
