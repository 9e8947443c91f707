import { createHash } from 'node:crypto'
import { createCurve, createUser, fromPublic, fromSeed } from '@nats-io/nkeys'
import { describe, expect, it } from 'vitest'
import { canonicalJson, tableCanonicalParts, tableDigest } from './digest.js'
import {
  generateSigningKey,
  loadSigningKey,
  parseTrustedKeys,
  SigningKeyError,
  signTable,
  signTableHead,
  tableSigningPayload,
  verifyTableHeadSignature,
  verifyTableSignature,
} from './signing.js'
import type { ZoneTable } from './table.js'
import { encodeTableBody } from './table-transport.js'

function table(generation = 3, withMeshes = false): ZoneTable {
  const body = {
    zone: 'zone-a',
    egresses: [{ name: 'ze-a', address: '127.0.0.1', port: 10002 }],
    routes: [
      {
        sni: 'orders{mesh=default}',
        mesh: 'default',
        service: 'orders',
        kind: 'cross-zone' as const,
        mode: 'passthrough' as const,
        upstreams: [{ address: '198.51.100.21', port: 10001, weight: 2, zone: 'zone-b' }],
      },
    ],
    ...(withMeshes ? { meshes: [{ name: 'default', caCerts: ['-----BEGIN CERTIFICATE-----\nx\n'] }] } : {}),
  }
  return {
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    generation,
    revision: `main@sha1:${'a'.repeat(40)}`,
    digest: tableDigest(body),
    ...body,
  }
}

const key = generateSigningKey()
const signer = loadSigningKey(`${key.seed}\n`)

describe('signing', () => {
  it('signing - a generated key is an nkey pair: seed SA…, public A…, loaded back to the same public key', () => {
    expect(key.seed).toMatch(/^SA[A-Z2-7]{56}$/)
    expect(key.publicKey).toMatch(/^A[A-Z2-7]{55}$/)
    expect(signer.publicKey).toBe(key.publicKey)
    expect(loadSigningKey(`# zonegate table signing key\n\n  ${key.seed}  \n`).publicKey).toBe(key.publicKey)
  })

  it('signing - signatures interoperate with @nats-io/nkeys both ways (ed25519 is deterministic)', () => {
    const payload = tableSigningPayload(table())
    const ours = Buffer.from(signer.signature(payload).value, 'base64url')
    expect(fromPublic(key.publicKey).verify(Buffer.from(payload), ours)).toBe(true)
    const theirs = fromSeed(new TextEncoder().encode(key.seed)).sign(Buffer.from(payload))
    expect(Buffer.from(theirs).equals(ours)).toBe(true)
  })

  it.each([
    ['without meshes', table()],
    ['with meshes', table(4, true)],
    ['without generation and revision', (({ generation: _g, revision: _r, ...t }) => t as ZoneTable)(table())],
    ['with an unknown member (generic walk)', { ...table(), extra: { b: 1, a: 2 } } as unknown as ZoneTable],
  ])('signing - the payload is the canonical JSON of the envelope without signature (%s)', (_n, t) => {
    const { signature: _s, ...rest } = signTable(t, signer)
    expect(tableSigningPayload(signTable(t, signer))).toBe(canonicalJson(rest))
    expect(tableSigningPayload(t, tableCanonicalParts(t))).toBe(canonicalJson(rest))
  })

  it('signing - the digest from shared parts equals the canonical JSON of zone+egresses+routes(+meshes)', () => {
    for (const t of [table(), table(1, true)]) {
      const body = canonicalJson({ zone: t.zone, egresses: t.egresses, routes: t.routes, meshes: t.meshes })
      expect(tableDigest(t)).toBe(`sha256:${createHash('sha256').update(body).digest('hex')}`)
    }
  })

  const other = loadSigningKey(generateSigningKey().seed)
  const signed = signTable(table(), signer)
  const cases: [string, () => ZoneTable, readonly string[], string][] = [
    ['unsigned', () => table(), [key.publicKey], 'unsigned'],
    ['signed by an untrusted key', () => signTable(table(), other), [key.publicKey], 'untrusted-key'],
    [
      'forged: claims the trusted key, signed by another',
      () => ({
        ...signTable(table(), other),
        signature: { ...signTable(table(), other).signature!, key: key.publicKey },
      }),
      [key.publicKey],
      'bad-signature',
    ],
    ['generation altered after signing', () => ({ ...signed, generation: 99 }), [key.publicKey], 'bad-signature'],
    [
      'route altered after signing',
      () => ({
        ...signed,
        routes: [{ ...signed.routes[0]!, upstreams: [{ address: '6.6.6.6', port: 1, weight: 1 }] }],
      }),
      [key.publicKey],
      'bad-signature',
    ],
    [
      'truncated value',
      () => ({ ...signed, signature: { ...signed.signature!, value: 'AAAA' } }),
      [key.publicKey],
      'bad-signature',
    ],
    [
      'wrong alg',
      () => ({ ...signed, signature: { ...signed.signature!, alg: 'rsa' as 'ed25519' } }),
      [key.publicKey],
      'bad-signature',
    ],
  ]
  it.each(cases)('signing - a table %s is refused', (_n, make, trusted, reason) => {
    const r = verifyTableSignature(make(), trusted)
    expect(r).toMatchObject({ ok: false, reason })
  })

  it('signing - a signed table verifies under any trusted key list containing its key (rotation)', () => {
    expect(verifyTableSignature(signed, [key.publicKey])).toEqual({ ok: true, key: key.publicKey })
    expect(verifyTableSignature(signed, [other.publicKey, key.publicKey]).ok).toBe(true)
    expect(verifyTableSignature(signed, [other.publicKey]).ok).toBe(false)
    // re-signing replaces the signature
    expect(verifyTableSignature(signTable(signed, other), [other.publicKey]).ok).toBe(true)
  })

  it('signing - a head is signed over its canonical JSON: swapping its object or digest breaks it', () => {
    const t = signTable(table(), signer)
    const json = JSON.stringify(t)
    const { head } = encodeTableBody(json, t as Required<ZoneTable>, { bucket: 'b', name: 'zone-a.table.3' })
    const h = signTableHead(head, signer)
    expect(verifyTableHeadSignature(h, [key.publicKey]).ok).toBe(true)
    expect(verifyTableHeadSignature(head, [key.publicKey])).toMatchObject({ ok: false, reason: 'unsigned' })
    const swapped = { ...h, object: { ...h.object, name: 'zone-a.table.1' } }
    expect(verifyTableHeadSignature(swapped, [key.publicKey])).toMatchObject({ ok: false, reason: 'bad-signature' })
    expect(verifyTableHeadSignature({ ...h, digest: `sha256:${'0'.repeat(64)}` }, [key.publicKey]).ok).toBe(false)
  })

  it.each([
    ['a seed', () => generateSigningKey().seed, /PUBLIC nkey/],
    ['garbage', () => 'hello', /not a public nkey/],
    [
      'a bad checksum',
      () => `${key.publicKey.slice(0, -1)}${key.publicKey.endsWith('A') ? 'B' : 'A'}`,
      /not a public nkey/,
    ],
    ['a curve key', () => createCurve().getPublicKey(), /curve/],
  ])('signing - --trusted-key refuses %s', (_n, make, message) => {
    expect(() => parseTrustedKeys([make()])).toThrow(message)
  })

  it('signing - trusted keys: user and account nkeys are accepted, deduplicated, blanks dropped', () => {
    const u = createUser().getPublicKey()
    expect(parseTrustedKeys([key.publicKey, ` ${u} `, '', key.publicKey])).toEqual([key.publicKey, u])
  })

  it('signing - a bad seed file gives an error that never contains the file text', () => {
    const secretish = `SA${'B'.repeat(56)}`
    for (const text of ['', '# only a comment\n', secretish, key.publicKey, createCurve().getSeed().toString()]) {
      let err: unknown
      try {
        loadSigningKey(text)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(SigningKeyError)
      expect((err as Error).message).not.toContain(secretish)
    }
  })
})
