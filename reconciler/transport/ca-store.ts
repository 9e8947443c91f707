import type { KV } from '@nats-io/kv'
import type { Logger } from 'pino'
import { caKey } from '../../schemas/subjects.js'
import type { AppliedMtls } from '../core/ca-change.js'
import type { MeshCaSpec } from '../core/mesh-ca.js'
import { type CaMaterial, createBuiltinCa } from '../core/pki/index.js'

/**
 * Bucket `zonegate-ca`: the builtin mesh CAs (key `caKey(mesh, backend)` → `{cert, key, mesh, backend, created}`)
 * and the mTLS state of the last applied revision (key `mtls-applied`, for the CA-change rule across restarts).
 * The CA keys are read and written only here; they are never logged or published anywhere else.
 */

/** Key of the applied mTLS state (never a CA key: those always contain a `.`). */
export const APPLIED_MTLS_KEY = 'mtls-applied'

interface StoredCa extends CaMaterial {
  mesh: string
  backend: string
  created: string
}

function parseStored(value: Uint8Array): CaMaterial | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(value)) as Partial<StoredCa>
    if (typeof v.cert === 'string' && typeof v.key === 'string') return { cert: v.cert, key: v.key }
  } catch {}
  return undefined
}

/** The stored builtin CA of `mesh`/`backend`, or undefined. Rejects on NATS errors. */
export async function readBuiltinCa(kv: KV, mesh: string, backend: string): Promise<CaMaterial | undefined> {
  const e = await kv.get(caKey(mesh, backend))
  if (e?.operation !== 'PUT' || e.value.byteLength === 0) return undefined
  return parseStored(e.value)
}

/**
 * The builtin CA of a mesh backend: read from KV, or created once (createBuiltinCa with the backend's RSA bits and
 * expiration) and stored with `create` (so two reconcilers racing keep one CA: the loser reads the winner's).
 * Rejects on NATS errors (the pass retries) or a stored value that does not parse.
 */
export async function ensureBuiltinCa(kv: KV, spec: MeshCaSpec, now: () => Date, log: Logger): Promise<CaMaterial> {
  const existing = await readBuiltinCa(kv, spec.mesh, spec.backend)
  if (existing) return existing
  const ca = await createBuiltinCa({
    mesh: spec.mesh,
    rsaBits: spec.rsaBits,
    lifetimeMs: spec.caLifetimeMs,
    now: now(),
  })
  const stored: StoredCa = { ...ca, mesh: spec.mesh, backend: spec.backend, created: now().toISOString() }
  try {
    await kv.create(caKey(spec.mesh, spec.backend), JSON.stringify(stored))
  } catch (err) {
    const winner = await readBuiltinCa(kv, spec.mesh, spec.backend)
    if (winner) return winner
    throw err
  }
  log.info({ ca: { mesh: spec.mesh, backend: spec.backend, rsaBits: spec.rsaBits } }, 'builtin mesh CA created')
  return ca
}

/** The applied mTLS state, or undefined when none was recorded yet. Rejects on NATS errors. */
export async function readAppliedMtls(kv: KV): Promise<AppliedMtls | undefined> {
  const e = await kv.get(APPLIED_MTLS_KEY)
  if (e?.operation !== 'PUT' || e.value.byteLength === 0) return undefined
  try {
    const v = JSON.parse(new TextDecoder().decode(e.value)) as AppliedMtls
    if (typeof v.revision === 'string' && v.meshes && typeof v.meshes === 'object') return v
  } catch {}
  return undefined
}

/** Records the applied mTLS state. Rejects on NATS errors. */
export async function writeAppliedMtls(kv: KV, value: AppliedMtls): Promise<void> {
  await kv.put(APPLIED_MTLS_KEY, JSON.stringify(value))
}
