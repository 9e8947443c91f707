import { X509Certificate as NodeX509, verify as nodeVerify } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { beforeAll, describe, expect, it } from 'vitest'
import { EGRESS_KUMA_URI } from '../../../schemas/certs.js'
import {
  type CaMaterial,
  CsrError,
  checkCaKeyPair,
  createBuiltinCa,
  createEgressCsr,
  issueWorkloadCertificate,
  type LoadedCa,
  loadCa,
  parseKumaDuration,
  signEgressCsr,
  verifyCsr,
} from './index.js'

const now = new Date('2026-12-02T02:00:00Z')
const HOUR = 3_600_000

/** Independent verification with Node's X.509 (OpenSSL): signature and issuer of `leaf` against `ca`. */
function chainsTo(leafPem: string, caPem: string): boolean {
  const leaf = new NodeX509(leafPem)
  const ca = new NodeX509(caPem)
  return leaf.checkIssued(ca) && leaf.verify(ca.publicKey)
}

describe('pki', () => {
  let ca: CaMaterial
  let loaded: LoadedCa
  beforeAll(async () => {
    ca = await createBuiltinCa({ mesh: 'default', rsaBits: 2048, lifetimeMs: 24 * HOUR, now })
    loaded = await loadCa(ca.cert, ca.key)
  })

  it('pki - Kuma durations parse; garbage does not', () => {
    expect(parseKumaDuration('24h')).toBe(24 * HOUR)
    expect(parseKumaDuration('10y')).toBe(3650 * 24 * HOUR)
    expect(parseKumaDuration('90s')).toBe(90_000)
    expect(parseKumaDuration('15m')).toBe(900_000)
    expect(parseKumaDuration('0')).toBe(0)
    expect(parseKumaDuration('2e')).toBeUndefined()
    expect(parseKumaDuration('1h30m')).toBeUndefined()
  })

  it('pki - builtin CA is a self-signed RSA root with Kuma subject and spiffe trust domain', () => {
    const c = new NodeX509(ca.cert)
    expect(c.ca).toBe(true)
    expect(c.subject).toBe('O=Kuma\nOU=Mesh\nCN=default')
    expect(c.subjectAltName).toBe('URI:spiffe://default')
    expect(c.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048)
    expect(c.verify(c.publicKey)).toBe(true)
    expect(new Date(c.validTo).getTime()).toBe(Math.floor((now.getTime() + 24 * HOUR) / 1000) * 1000)
    expect(ca.key).toMatch(/^-----BEGIN PRIVATE KEY-----/)
    expect(checkCaKeyPair(ca.cert, ca.key)).toEqual([])
  })

  it('pki - egress CSR is signed with Kuma SANs, the requested lifetime, and chains to the CA', async () => {
    const { csr, key } = await createEgressCsr('default')
    const issued = await signEgressCsr({ ca: loaded, mesh: 'default', csr, lifetimeMs: 2 * HOUR, now })
    const leaf = new NodeX509(issued.cert)
    expect(leaf.subjectAltName).toBe(`URI:spiffe://default/zone-egress, URI:${EGRESS_KUMA_URI}`)
    expect(leaf.ca).toBe(false)
    expect(chainsTo(issued.cert, ca.cert)).toBe(true)
    expect(issued.notAfter.getTime()).toBe(now.getTime() + 2 * HOUR)
    expect(new Date(leaf.validTo).getTime()).toBe(Math.floor(issued.notAfter.getTime() / 1000) * 1000)
    // The leaf carries the requester's key: a signature made with it verifies against the certificate.
    const { createPrivateKey, sign } = await import('node:crypto')
    const sig = sign('sha256', Buffer.from('hello'), createPrivateKey(key))
    expect(nodeVerify('sha256', Buffer.from('hello'), leaf.publicKey, sig)).toBe(true)
    const parsed = new x509.X509Certificate(issued.cert)
    const eku = parsed.getExtension(x509.ExtendedKeyUsageExtension)
    expect(eku?.usages).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth])
  })

  it('pki - a leaf never outlives its CA', async () => {
    const { csr } = await createEgressCsr('default')
    const issued = await signEgressCsr({ ca: loaded, mesh: 'default', csr, lifetimeMs: 1000 * HOUR, now })
    expect(issued.notAfter.getTime()).toBe(loaded.cert.notAfter.getTime())
  })

  it('pki - malformed, oversized, multi-block and tampered CSRs are refused with CsrError', async () => {
    await expect(verifyCsr('')).rejects.toThrow(CsrError)
    await expect(verifyCsr('hello')).rejects.toThrow(/exactly one PEM/)
    await expect(
      verifyCsr('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'),
    ).rejects.toThrow(/not a valid PKCS#10/)
    await expect(verifyCsr('x'.repeat(20_000))).rejects.toThrow(/larger than/)
    const { csr } = await createEgressCsr('default')
    await expect(verifyCsr(csr + csr)).rejects.toThrow(/exactly one/)
    // Flip one byte of the signature (the end of the DER): parse still works, verification fails.
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64')
    der[der.length - 3] = (der[der.length - 3] as number) ^ 0xff
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST')
    await expect(verifyCsr(tampered)).rejects.toThrow(/signature does not verify/)
  })

  it('pki - small RSA keys in CSRs are refused', async () => {
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]) }
    const keys = (await crypto.subtle.generateKey({ ...alg, modulusLength: 1024 }, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys, signingAlgorithm: alg })
    await expect(verifyCsr(csr.toString('pem'))).rejects.toThrow(/at least 2048 bits/)
  })

  it('pki - workload certificate: spiffe://mesh/service, fresh key that matches, chains to the CA', async () => {
    const w = await issueWorkloadCertificate({ ca: loaded, mesh: 'default', service: 'web', lifetimeMs: HOUR, now })
    const leaf = new NodeX509(w.cert)
    expect(leaf.subjectAltName).toBe('URI:spiffe://default/web, URI:kuma://kuma.io/service/web')
    expect(chainsTo(w.cert, ca.cert)).toBe(true)
    const { createPrivateKey } = await import('node:crypto')
    expect(leaf.checkPrivateKey(createPrivateKey(w.key))).toBe(true)
  })

  it('pki - provided CA key pair checks use Kuma messages', async () => {
    const other = await createBuiltinCa({ mesh: 'other', rsaBits: 2048, lifetimeMs: HOUR, now })
    expect(checkCaKeyPair(ca.cert, other.key)).toEqual([
      'not a valid TLS key pair: tls: private key does not match public key',
    ])
    expect(checkCaKeyPair('nothing', ca.key)).toEqual([
      'not a valid TLS key pair: tls: failed to find any PEM data in certificate input',
    ])
    expect(checkCaKeyPair(ca.cert, 'nothing')).toEqual([
      'not a valid TLS key pair: tls: failed to find any PEM data in key input',
    ])
    // A leaf (not a CA) with its own key: the pair matches but it cannot sign certificates.
    const w = await issueWorkloadCertificate({ ca: loaded, mesh: 'default', service: 'web', lifetimeMs: HOUR, now })
    expect(checkCaKeyPair(w.cert, w.key)).toEqual([
      "basic constraint 'CA' must be set to 'true' (see X509-SVID: 4.1. Basic Constraints)",
      "key usage extension 'keyCertSign' must be set (see X509-SVID: 4.3. Key Usage)",
    ])
  })

  it('pki - a provided EC CA signs, with an ECDSA signature that chains', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
    const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=ec-root',
      keys,
      signingAlgorithm: alg,
      notBefore: new Date(now.getTime() - HOUR),
      notAfter: new Date(now.getTime() + 100 * HOUR),
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      ],
    })
    const keyPem = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY')
    expect(checkCaKeyPair(cert.toString('pem'), keyPem)).toEqual([])
    const ec = await loadCa(cert.toString('pem'), keyPem)
    const { csr } = await createEgressCsr('m1')
    const issued = await signEgressCsr({ ca: ec, mesh: 'm1', csr, lifetimeMs: HOUR, now })
    expect(chainsTo(issued.cert, cert.toString('pem'))).toBe(true)
  })
})
