import type { DataSource, Mesh, MtlsBackend } from '../../schemas/resources.js'
import { type DataFiles, dataSourceValue } from './data-source.js'
import { BUILTIN_CA_DEFAULTS, DEFAULT_DP_CERT_EXPIRATION, parseKumaDuration } from './pki/ca.js'
import { splitPemCertificates } from './pki/keys.js'

/**
 * A mesh's enabled CA backend as the reconciler uses it: which backend, its type, and the settings that come from
 * the Mesh resource (builtin key size and lifetime, provided PEM data, the lifetime of issued certificates). Pure.
 */

export interface MeshCaSpec {
  mesh: string
  backend: string
  type: 'builtin' | 'provided'
  /** Lifetime of issued identity certificates: `dpCert.rotation.expiration` (Kuma's default 24h). */
  dpCertLifetimeMs: number
  /** builtin: `conf.caCert.RSAbits` (default 2048). */
  rsaBits: number
  /** builtin: `conf.caCert.expiration` in ms (default 10y). */
  caLifetimeMs: number
  /** provided: PEM certificate and key read from the data sources (validated before). */
  provided?: { cert: string; key: string }
}

const rec = (x: unknown): Record<string, unknown> =>
  x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : {}

/** The enabled mTLS backend of a mesh, or undefined when mTLS is off or it names no backend. Pure. */
export function enabledBackendOf(mesh: Mesh): MtlsBackend | undefined {
  const name = mesh.mtls?.enabledBackend
  if (!name) return undefined
  return (mesh.mtls?.backends ?? []).find((b) => b.name === name)
}

/**
 * The CA spec of a mesh with mTLS on (undefined otherwise, or for a backend type without a plugin). Provided
 * backends read `conf.cert`/`conf.key` through `files`. Pure.
 */
export function meshCaSpec(mesh: Mesh, files?: DataFiles): MeshCaSpec | undefined {
  const b = enabledBackendOf(mesh)
  if (!b || (b.type !== 'builtin' && b.type !== 'provided')) return undefined
  const exp = parseKumaDuration(b.dpCert?.rotation?.expiration ?? DEFAULT_DP_CERT_EXPIRATION)
  const dpCertLifetimeMs = exp && exp > 0 ? exp : (parseKumaDuration(DEFAULT_DP_CERT_EXPIRATION) as number)
  const caCert = rec(rec(b.conf).caCert)
  const rawBits = typeof caCert.RSAbits === 'string' ? Number(caCert.RSAbits) : caCert.RSAbits
  const bits =
    typeof rawBits === 'number' && Number.isInteger(rawBits) && rawBits > 0 ? rawBits : BUILTIN_CA_DEFAULTS.rsaBits
  const caExp = typeof caCert.expiration === 'string' ? parseKumaDuration(caCert.expiration) : undefined
  const spec: MeshCaSpec = {
    mesh: mesh.name,
    backend: b.name,
    type: b.type,
    dpCertLifetimeMs,
    rsaBits: bits,
    caLifetimeMs: caExp && caExp > 0 ? caExp : (parseKumaDuration(BUILTIN_CA_DEFAULTS.expiration) as number),
  }
  if (b.type === 'provided') {
    const conf = rec(b.conf)
    const cert = dataSourceValue(rec(conf.cert) as DataSource, files)
    const key = dataSourceValue(rec(conf.key) as DataSource, files)
    if (cert !== undefined && key !== undefined) spec.provided = { cert, key }
  }
  return spec
}

/**
 * The public CA certificates (PEM) callers of a mesh chain to: a provided backend's `conf.cert` bundle, or for
 * a builtin backend what `builtin` holds for the mesh (the reconciler's CA from KV). Undefined when unknown or
 * mTLS is off. Pure.
 */
export function meshCaCertificates(
  mesh: Mesh,
  files: DataFiles | undefined,
  builtin: ReadonlyMap<string, readonly string[]> | undefined,
): readonly string[] | undefined {
  const b = enabledBackendOf(mesh)
  if (!b) return undefined
  if (b.type === 'builtin') return builtin?.get(mesh.name)
  if (b.type !== 'provided') return undefined
  const cert = dataSourceValue(rec(rec(b.conf).cert) as DataSource, files)
  const certs = cert === undefined ? [] : splitPemCertificates(cert)
  return certs.length > 0 ? certs : undefined
}
