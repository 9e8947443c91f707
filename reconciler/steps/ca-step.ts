import type { Logger } from 'pino'
import { type AppliedMtls, caChangeViolations, mtlsBackendsOf } from '../core/ca-change.js'
import type { ActiveMeshCa } from '../core/cert-service.js'
import { PublishFailed, ReconcileError } from '../core/errors.js'
import { meshCaSpec } from '../core/mesh-ca.js'
import type { Resources } from '../core/model.js'
import { type CaMaterial, loadCa, splitPemCertificates } from '../core/pki/index.js'
import type { PassState } from '../reconcile.js'
import { rejectRevision } from './steps.js'
import type { PassDeps, Step } from './types.js'

/**
 * Step 2b of a pass, between validate and compile: the mesh CAs (docs/mtls.md).
 * - Kuma's rule: a mesh whose mTLS stays on may not change `mtls.enabledBackend` against the last applied revision
 *   (read from KV `zonegate-ca` once per process) → `commit.<sha>.invalid`, nothing published (ValidationFailed).
 * - Each mesh with mTLS on gets its CA ready: builtin CAs are read from KV or created once there; provided CAs come
 *   from the resources. Their certificates go to compile (`meshes[].caCerts`); the signing CAs are kept for the
 *   certificate service once the revision is applied.
 * NATS errors are the transient PublishFailed (retried).
 */
export interface CaPlan {
  builtinCaCerts: Map<string, string[]>
  active: Map<string, ActiveMeshCa>
  applied: AppliedMtls
}

export async function caStep(
  deps: PassDeps,
  state: PassState,
  resources: Resources,
  revision: string,
  sha: string,
  log: Logger,
): Promise<Step<CaPlan>> {
  const transient = (err: unknown) => ({
    error:
      err instanceof ReconcileError
        ? err
        : new PublishFailed('zonegate-ca', err instanceof Error ? err.message : String(err), { cause: err }),
  })
  if (state.appliedMtls === undefined && deps.ca) {
    try {
      state.appliedMtls = (await deps.ca.readApplied()) ?? { revision: '', meshes: {} }
    } catch (err) {
      return transient(err)
    }
  }
  const violations = caChangeViolations(state.appliedMtls?.meshes ?? {}, resources)
  if (violations.length > 0) return rejectRevision(deps, state, revision, sha, violations, log)
  const builtinCaCerts = new Map<string, string[]>()
  const active = new Map<string, ActiveMeshCa>()
  for (const { resource: mesh } of resources.meshes) {
    const spec = meshCaSpec(mesh, resources.files)
    if (!spec) continue
    let material: CaMaterial | undefined
    if (spec.type === 'provided') material = spec.provided
    else if (deps.ca) {
      try {
        material = await deps.ca.ensureBuiltin(spec)
      } catch (err) {
        return transient(err)
      }
      builtinCaCerts.set(mesh.name, splitPemCertificates(material.cert))
    }
    if (!material) continue
    try {
      const ca = await loadCa(material.cert, material.key)
      active.set(mesh.name, {
        mesh: mesh.name,
        backend: spec.backend,
        ca,
        caCerts: splitPemCertificates(material.cert),
        lifetimeMs: spec.dpCertLifetimeMs,
      })
    } catch (err) {
      // Provided pairs are checked by validation; a stored builtin CA that no longer loads is logged, not fatal.
      log.error({ err, ca: { mesh: mesh.name, backend: spec.backend } }, 'mesh CA cannot sign')
    }
  }
  return { value: { builtinCaCerts, active, applied: { revision, meshes: mtlsBackendsOf(resources) } } }
}

/**
 * After a revision is applied: the certificate service signs with its CAs, and its mTLS state becomes the
 * reference of the CA-change rule (written to KV when it changed; a failed write is logged and retried next time).
 */
export async function commitCaPlan(deps: PassDeps, state: PassState, plan: CaPlan, log: Logger): Promise<void> {
  state.meshCas = plan.active
  const before = JSON.stringify(state.appliedMtls?.meshes ?? {})
  const changed = before !== JSON.stringify(plan.applied.meshes) || state.appliedMtlsDirty === true
  state.appliedMtls = plan.applied
  if (!changed || !deps.ca) return
  try {
    await deps.ca.writeApplied(plan.applied)
    state.appliedMtlsDirty = false
  } catch (err) {
    state.appliedMtlsDirty = true
    log.warn({ err }, 'applied mTLS state not written')
  }
}
