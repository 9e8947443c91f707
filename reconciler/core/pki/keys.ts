import { createPrivateKey, type KeyObject, X509Certificate as NodeX509 } from 'node:crypto'
import * as x509 from '@peculiar/x509'

/**
 * Key and PEM plumbing of the mesh PKI: PEM private keys (PKCS#8, PKCS#1 RSA, SEC1 EC) into WebCrypto keys, and
 * the signing algorithm that goes with a key. X.509 encoding is `@peculiar/x509`'s; key parsing is Node's.
 * Pure (no I/O, no clock).
 */

/** A CA as the signer uses it: its certificate (PEM and parsed) and its private key as a WebCrypto key. */
export interface LoadedCa {
  certPem: string
  cert: x509.X509Certificate
  key: CryptoKey
  algorithm: SigningAlgorithm
}

/** The WebCrypto algorithm a CA key signs with (SHA-256 for RSA and P-256, SHA-384 for P-384). */
export type SigningAlgorithm =
  | { name: 'RSASSA-PKCS1-v1_5'; hash: 'SHA-256' }
  | { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384'; hash: 'SHA-256' | 'SHA-384' }

/** A PEM private key that cannot be used: `message` is short and never contains key material. */
export class KeyError extends Error {
  readonly code = 'KeyError'
}

/** The signing algorithm of a Node key object; throws KeyError for unsupported key types or curves. */
export function signingAlgorithmOf(key: KeyObject): SigningAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve
    if (curve === 'prime256v1') return { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
    if (curve === 'secp384r1') return { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' }
    throw new KeyError(`unsupported EC curve ${curve ?? '?'} (use P-256 or P-384)`)
  }
  throw new KeyError(`unsupported key type ${key.asymmetricKeyType ?? '?'} (use RSA or ECDSA)`)
}

/** Parses a PEM private key of any common encoding; throws KeyError (no key material in the message). */
export function parsePrivateKeyPem(pem: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new KeyError('failed to find any PEM data in key input')
  try {
    return createPrivateKey({ key: pem, format: 'pem' })
  } catch {
    throw new KeyError('failed to parse private key')
  }
}

/** Imports a PEM private key into WebCrypto for signing (PKCS#8 under the hood). Throws KeyError. */
export async function importSigningKey(pem: string): Promise<{ key: CryptoKey; algorithm: SigningAlgorithm }> {
  const ko = parsePrivateKeyPem(pem)
  const algorithm = signingAlgorithmOf(ko)
  const der = ko.export({ format: 'der', type: 'pkcs8' })
  const params =
    algorithm.name === 'ECDSA'
      ? { name: 'ECDSA', namedCurve: algorithm.namedCurve }
      : { name: 'RSASSA-PKCS1-v1_5', hash: algorithm.hash }
  const key = await crypto.subtle.importKey('pkcs8', der, params, false, ['sign'])
  return { key, algorithm }
}

/** PKCS#8 PEM of a WebCrypto private key (must be extractable). */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key)
  return `${x509.PemConverter.encode(der, 'PRIVATE KEY')}\n`
}

/** Loads a CA from PEM certificate + key (first certificate of the bundle signs). Throws KeyError. */
export async function loadCa(certPem: string, keyPem: string): Promise<LoadedCa> {
  const first = splitPemCertificates(certPem)[0]
  if (!first) throw new KeyError('failed to find any PEM data in certificate input')
  const cert = new x509.X509Certificate(first)
  const { key, algorithm } = await importSigningKey(keyPem)
  return { certPem: first, cert, key, algorithm }
}

/** The `-----BEGIN CERTIFICATE-----` blocks of a PEM bundle, each normalised with a trailing newline. Pure. */
export function splitPemCertificates(pem: string): string[] {
  const out: string[] = []
  for (const m of pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)) out.push(`${m[0]}\n`)
  return out
}

/** Node's view of a PEM certificate (for quick sync checks); undefined when it does not parse. */
export function nodeCertificate(pem: string): NodeX509 | undefined {
  try {
    return new NodeX509(pem)
  } catch {
    return undefined
  }
}
