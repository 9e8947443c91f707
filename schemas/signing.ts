import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto'
import { createAccount, fromPublic, fromSeed } from '@nats-io/nkeys'
import { canonicalJson, type TableCanonicalParts, tableCanonicalParts } from './digest.js'
import type { TableSignature, ZoneTable } from './table.js'
import type { TableHead } from './table-transport.js'

/**
 * Signed tables (docs/decisions/010-signed-tables.md). The reconciler signs every envelope it publishes with an
 * ed25519 key of its own; egresses pin the public keys they trust and admit only a table signed by one of them.
 *
 * - Keys are NATS nkeys (`@nats-io/nkeys`): the seed (`SA…`) is the secret, kept in a file; the public key
 *   (`A…`) is what `signature.key` and `--trusted-key` carry. Any ed25519 nkey (not a curve key) works.
 * - `signature.value` is base64url (no padding) of the 64-byte ed25519 signature of the **canonical JSON of the
 *   envelope without `signature`** (schemas/digest.ts `canonicalJson`: keys sorted, no whitespace). That covers
 *   apiVersion, kind, zone, generation, revision, digest and the content itself.
 * - A large table's KV head (schemas/table-transport.ts) is signed the same way (canonical JSON of the head
 *   without `signature`), so an egress can refuse a forged head before fetching any body; the body's envelope
 *   carries its own signature, checked at admission like an inline table.
 * The key format and checksum come from nkeys; signing and verifying use Node's native ed25519 (OpenSSL),
 * which gives the same signatures as nkeys (ed25519 is deterministic; tested) but is ~100× faster on the tens of
 * megabytes of a 100,000-route table. Pure (no I/O): keys are passed in as text.
 */

export const SIGNATURE_ALG = 'ed25519'

/** A key that cannot be used, with the reason (never the key material). */
export class SigningKeyError extends Error {
  readonly code = 'SigningKeyError'
}

/** Why a signature check failed. */
export const SignatureRejection = {
  /** No `signature` although trusted keys are configured. */
  Unsigned: 'unsigned',
  /** Signed by a key that is not among the trusted ones. */
  UntrustedKey: 'untrusted-key',
  /** The signature does not verify (the table was altered, or signed by someone else under that key's name). */
  BadSignature: 'bad-signature',
} as const
export type SignatureRejection = (typeof SignatureRejection)[keyof typeof SignatureRejection]

export type SignatureCheck = { ok: true; key: string } | { ok: false; reason: SignatureRejection; problem: string }

/** The reconciler's signing key, loaded from its seed. */
export interface TableSigner {
  /** The public nkey (`A…`), as written in `signature.key`. */
  readonly publicKey: string
  /** `signature` over these bytes. */
  signature(payload: string | Uint8Array): TableSignature
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/** RFC 4648 base32 without padding (the nkey text encoding) to bytes. */
function base32Decode(text: string): Buffer {
  const out: number[] = []
  let bits = 0
  let acc = 0
  for (const ch of text) {
    const v = B32.indexOf(ch)
    if (v < 0) throw new SigningKeyError('not a base32 nkey')
    acc = (acc << 5) | v
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out.push((acc >> bits) & 0xff)
    }
  }
  return Buffer.from(out)
}

// DER prefixes of an ed25519 PKCS#8 private key and SPKI public key (RFC 8410), followed by the 32 raw bytes.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex')

const publicKeys = new Map<string, KeyObject>()

/**
 * The Node key object of a public nkey, checked by nkeys (prefix, length, CRC) and cached. Throws
 * SigningKeyError naming what is wrong. Pure apart from the cache.
 */
export function publicKeyObject(key: string): KeyObject {
  const cached = publicKeys.get(key)
  if (cached) return cached
  try {
    fromPublic(key)
  } catch (err) {
    throw new SigningKeyError(`"${key.slice(0, 60)}" is not a public nkey: ${(err as Error).message}`)
  }
  if (key.startsWith('X')) throw new SigningKeyError(`"${key}" is a curve (x25519) key; it cannot verify signatures`)
  // decoded: 1 prefix byte, 32 key bytes, 2 CRC bytes
  const raw = base32Decode(key).subarray(1, 33)
  const obj = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' })
  publicKeys.set(key, obj)
  return obj
}

/** Checks every `--trusted-key` value; returns them deduplicated. Throws SigningKeyError for a bad one. Pure. */
export function parseTrustedKeys(keys: readonly string[]): string[] {
  const out = [...new Set(keys.map((k) => k.trim()).filter(Boolean))]
  for (const k of out) {
    if (k.startsWith('S'))
      throw new SigningKeyError('a trusted key must be a PUBLIC nkey (A…); this looks like a seed — keep it secret')
    publicKeyObject(k)
  }
  return out
}

/**
 * Loads a signing key from the text of a seed file (`SA…`, surrounding whitespace and `#` comment lines
 * ignored). Throws SigningKeyError (the message never contains the seed).
 */
export function loadSigningKey(text: string): TableSigner {
  const seed = text
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'))
  if (!seed) throw new SigningKeyError('no nkey seed found (expected a line starting with S)')
  let publicKey: string
  try {
    const kp = fromSeed(new TextEncoder().encode(seed))
    publicKey = kp.getPublicKey()
    kp.clear()
  } catch (err) {
    throw new SigningKeyError(`not an nkey seed: ${(err as Error).message}`)
  }
  if (publicKey.startsWith('X')) throw new SigningKeyError('a curve (x25519) seed cannot sign')
  // decoded seed: 2 prefix bytes, 32 seed bytes, 2 CRC bytes
  const raw = base32Decode(seed).subarray(2, 34)
  const privateKey: KeyObject = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519, raw]),
    format: 'der',
    type: 'pkcs8',
  })
  raw.fill(0)
  return {
    publicKey,
    signature: (payload) => ({
      alg: SIGNATURE_ALG,
      key: publicKey,
      value: sign(null, typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload, privateKey).toString(
        'base64url',
      ),
    }),
  }
}

/** A new signing key: the seed text to store (secret) and its public key. */
export function generateSigningKey(): { seed: string; publicKey: string } {
  const kp = createAccount()
  const out = { seed: new TextDecoder().decode(kp.getSeed()), publicKey: kp.getPublicKey() }
  kp.clear()
  return out
}

const ENVELOPE_KEYS = new Set([
  'apiVersion',
  'kind',
  'zone',
  'generation',
  'revision',
  'digest',
  'egresses',
  'routes',
  'meshes',
  'signature',
])

/**
 * The bytes an envelope's signature covers: canonicalJson of the envelope without `signature`. `parts`
 * (tableCanonicalParts of the same table, as the digest check computed them) avoids serialising the routes a
 * second time; an envelope with members other than the known ones takes the generic walk. Pure.
 */
export function tableSigningPayload(table: ZoneTable, parts?: TableCanonicalParts): string {
  const { signature: _s, ...rest } = table
  if (!Object.keys(rest).every((k) => ENVELOPE_KEYS.has(k))) return canonicalJson(rest)
  const p = parts ?? tableCanonicalParts(table)
  // canonicalJson(rest) assembled by hand: keys in bytewise order, undefined members dropped.
  const members: [string, string | undefined][] = [
    ['apiVersion', scalar(table.apiVersion)],
    ['digest', scalar(table.digest)],
    ['egresses', table.egresses === undefined ? undefined : p.egresses],
    ['generation', scalar(table.generation)],
    ['kind', scalar(table.kind)],
    ['meshes', p.meshes],
    ['revision', scalar(table.revision)],
    ['routes', table.routes === undefined ? undefined : p.routes],
    ['zone', scalar(table.zone)],
  ]
  return `{${members
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `"${k}":${v}`)
    .join(',')}}`
}

const scalar = (v: unknown) => (v === undefined ? undefined : canonicalJson(v))

/** The envelope with `signature` set by `signer` (any previous signature replaced). Pure. */
export function signTable<T extends ZoneTable>(table: T, signer: TableSigner): T {
  const { signature: _old, ...unsigned } = table
  return { ...unsigned, signature: signer.signature(tableSigningPayload(unsigned as T)) } as T
}

/** The head with `signature` over its canonical JSON without `signature`. Pure. */
export function signTableHead(head: TableHead, signer: TableSigner): TableHead {
  const { signature: _old, ...unsigned } = head
  return { ...unsigned, signature: signer.signature(canonicalJson(unsigned)) }
}

/**
 * Checks a signature over `payload` against the trusted keys: present, by a trusted key, and valid. `what`
 * names the object in the problem text. Never throws.
 */
export function verifySignature(
  payload: () => string,
  signature: TableSignature | undefined,
  trusted: readonly string[],
  what: string,
): SignatureCheck {
  if (signature === undefined || signature === null || typeof signature !== 'object')
    return { ok: false, reason: SignatureRejection.Unsigned, problem: `${what} is not signed` }
  if (signature.alg !== SIGNATURE_ALG || typeof signature.value !== 'string' || typeof signature.key !== 'string')
    return { ok: false, reason: SignatureRejection.BadSignature, problem: `${what}: malformed signature` }
  if (!trusted.includes(signature.key))
    return {
      ok: false,
      reason: SignatureRejection.UntrustedKey,
      problem: `${what} is signed by ${signature.key.slice(0, 60)}, which is not a trusted key`,
    }
  const sig = Buffer.from(signature.value, 'base64url')
  let good = false
  try {
    good = sig.length === 64 && verify(null, Buffer.from(payload(), 'utf8'), publicKeyObject(signature.key), sig)
  } catch {
    good = false
  }
  return good
    ? { ok: true, key: signature.key }
    : { ok: false, reason: SignatureRejection.BadSignature, problem: `${what}: signature does not verify` }
}

/** verifySignature for an envelope (its signing payload, with the digest check's `parts` when given). */
export function verifyTableSignature(
  table: ZoneTable,
  trusted: readonly string[],
  parts?: TableCanonicalParts,
): SignatureCheck {
  return verifySignature(
    () => tableSigningPayload(table, parts),
    table.signature,
    trusted,
    `table ${table.zone} generation ${table.generation ?? '(none)'}`,
  )
}

/** verifySignature for a large table's head. */
export function verifyTableHeadSignature(head: TableHead, trusted: readonly string[]): SignatureCheck {
  const { signature, ...unsigned } = head
  return verifySignature(
    () => canonicalJson(unsigned),
    signature,
    trusted,
    `table head ${head.zone} generation ${head.generation}`,
  )
}
