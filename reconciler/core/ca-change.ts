import type { Violation } from '../../schemas/violation.js'
import { mtlsOn } from './compile-inputs.js'
import type { Resources } from './model.js'

/**
 * Kuma's mesh-manager rule 10 (`pkg/core/managers/apis/mesh/mesh_validator.go`, ValidateUpdate): while mTLS stays
 * on, `mtls.enabledBackend` may not change — a CA swap takes two commits (turn mTLS off, then switch). zonegate
 * checks it against the last applied revision (reconciler) or between the two sides (`zonegate diff`). Pure.
 */

export const CA_CHANGE_RULE = 'mesh.mtls-ca-change'
export const CA_CHANGE_MESSAGE =
  'Changing CA when mTLS is enabled is forbidden. Disable mTLS first and then change the CA'

/** Mesh name → enabled CA backend, for every mesh with mTLS on. */
export type MtlsBackends = Record<string, string>

/** The applied mTLS state the reconciler keeps (KV `zonegate-ca`, key `mtls-applied`). */
export interface AppliedMtls {
  revision: string
  meshes: MtlsBackends
}

/** Mesh → enabled backend of every mesh with mTLS on. Pure. */
export function mtlsBackendsOf(resources: Resources): MtlsBackends {
  const out: MtlsBackends = {}
  for (const { resource: m } of resources.meshes) if (mtlsOn(m)) out[m.name] = m.mtls?.enabledBackend as string
  return out
}

/**
 * Violations (at the Mesh's `mtls.enabledBackend`, Kuma's path and message) for each mesh that has mTLS on in
 * `previous` and in `next` with a different enabled backend. Sorted by mesh name. Pure.
 */
export function caChangeViolations(previous: MtlsBackends, next: Resources): Violation[] {
  const out: Violation[] = []
  for (const { resource: m, location, positions } of next.meshes) {
    const before = Object.hasOwn(previous, m.name) ? previous[m.name] : undefined
    if (!before || !mtlsOn(m) || m.mtls?.enabledBackend === before) continue
    const at = positions.get('mtls.enabledBackend') ?? location
    out.push({
      file: location.file,
      line: at.line,
      column: at.column,
      kind: 'Mesh',
      name: m.name,
      path: 'mtls.enabledBackend',
      rule: CA_CHANGE_RULE,
      message: `${CA_CHANGE_MESSAGE} (was "${before}", now "${m.mtls?.enabledBackend}")`,
    })
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}
