import { caChangeViolations, mtlsBackendsOf } from '../core/ca-change.js'
import type { ActiveMeshCa } from '../core/cert-service.js'
import { PublishFailed } from '../core/errors.js'
import { meshCaSpec } from '../core/mesh-ca.js'
import type { Resources } from '../core/model.js'
import { type CaMaterial, loadCa, splitPemCertificates } from '../core/pki/index.js'
import type { PassReport } from '../pass-state.js'
import { asReconcileError, rejectRevision } from './commit-events.js'
import type { PassContext, Step } from './types.js'

/**
 * The mesh CA step, between validate and compile (docs/mtls.md).
 * - Kuma's rule: a mesh whose mTLS stays on may not change `mtls.enabledBackend` against the last applied revision
 *   (read from KV `zonegate-ca` once per process) → `commit.<sha>.invalid`, nothing published (ValidationFailed).
 * - Each mesh with mTLS on gets its CA ready: builtin CAs are read from KV or created once there; provided CAs come
 *   from the resources. Their certificates go to compile (`meshes[].caCerts`); the signing CAs are kept for the
 *   certificate service once the revision is applied.
 * NATS errors are the transient PublishFailed (retried). Sets `ctx.caPlan`, applied by `caCommitStep`.
 */
export async function caStep(ctx: PassContext): Promise<Step<PassReport | undefined>> {
  const { deps, state, log } = ctx
  const revision = ctx.revision as string
  const resources = ctx.resources as Resources
  const transient = (err: unknown) => ({
    error: asReconcileError(err, (m, cause) => new PublishFailed('zonegate-ca', m, { cause })),
  })
  if (state.appliedMtls === undefined && deps.ca) {
    try {
      state.appliedMtls = (await deps.ca.readApplied()) ?? { revision: '', meshes: {} }
    } catch (err) {
      return transient(err)
    }
  }
  const violations = caChangeViolations(state.appliedMtls?.meshes ?? {}, resources)
  if (violations.length > 0) return rejectRevision(ctx, revision, violations)
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
  ctx.caPlan = { builtinCaCerts, active, applied: { revision, meshes: mtlsBackendsOf(resources) } }
  return { value: undefined }
}

/**
 * After a revision is applied: the certificate service signs with its CAs, and its mTLS state becomes the
 * reference of the CA-change rule (written to KV when it changed; a failed write is logged and retried next
 * time, never an error of the pass).
 */
export async function caCommitStep(ctx: PassContext): Promise<Step<PassReport | undefined>> {
  const { deps, state, log } = ctx
  const plan = ctx.caPlan
  if (!plan) return { value: undefined }
  state.meshCas = plan.active
  const before = JSON.stringify(state.appliedMtls?.meshes ?? {})
  const changed = before !== JSON.stringify(plan.applied.meshes) || state.appliedMtlsDirty === true
  state.appliedMtls = plan.applied
  if (!changed || !deps.ca) return { value: undefined }
  try {
    await deps.ca.writeApplied(plan.applied)
    state.appliedMtlsDirty = false
  } catch (err) {
    state.appliedMtlsDirty = true
    log.warn({ err }, 'applied mTLS state not written')
  }
  return { value: undefined }
}
