import type { MeshTrafficPermission, TargetRef } from '../../../schemas/resources.js'
import { type Emit, tagRules } from './tags.js'

/**
 * Kuma's MeshTrafficPermission validator (`pkg/plugins/policies/meshtrafficpermission/api/v1alpha1/validator.go`
 * with `ValidateTargetRef` of `pkg/core/resources/apis/mesh`), paths rooted at `spec` as Kuma reports them. Pure.
 */

/** Kinds Kuma accepts in the top-level `spec.targetRef` of a MeshTrafficPermission. */
export const MTP_TOP_KINDS: readonly string[] = ['Mesh', 'MeshSubset', 'MeshService', 'MeshServiceSubset', 'Dataplane']
/** Kinds Kuma accepts in `spec.from[].targetRef`. */
export const MTP_FROM_KINDS: readonly string[] = ['Mesh', 'MeshSubset', 'MeshService', 'MeshServiceSubset']

/** Kuma's ValidateTargetRef for the kinds above, reporting under `path`. */
export function targetRefRules(path: string, ref: TargetRef, kinds: readonly string[], emit: Emit): void {
  const kind = ref.kind ?? ''
  if (kind === '') {
    emit('policy.target-ref-kind', `${path}.kind`, 'must be defined')
    return
  }
  if (!kinds.includes(kind)) {
    emit('policy.target-ref-kind', `${path}.kind`, 'value is not supported')
    return
  }
  const hasName = (ref.name ?? '') !== ''
  const hasTags = ref.tags !== undefined && Object.keys(ref.tags).length > 0
  const disallowed = (field: string) =>
    emit('policy.target-ref-field', `${path}.${field}`, `must not be set with kind ${kind}`)
  const required = (field: string) =>
    emit('policy.target-ref-field', `${path}.${field}`, `must be set with kind ${kind}`)
  switch (kind) {
    case 'Mesh':
      if (hasName) emit('policy.target-ref-field', `${path}.name`, `using name with kind ${kind} is not yet supported`)
      if (hasTags) disallowed('tags')
      break
    case 'MeshSubset':
      if (hasName) disallowed('name')
      tagRules(`${path}.tags`, ref.tags ?? {}, emit, {})
      break
    case 'MeshService':
      if (!hasName) required('name')
      if (hasTags) disallowed('tags')
      break
    case 'MeshServiceSubset':
      if (!hasName) required('name')
      tagRules(`${path}.tags`, ref.tags ?? {}, emit, {})
      break
    case 'Dataplane':
      if (hasTags) disallowed('tags')
      break
  }
}

/** MeshTrafficPermission: `spec.targetRef` (optional: absent = Mesh), at least one `from`, each with a valid
 * targetRef and a `default.action`. */
export function meshTrafficPermissionRules(mtp: MeshTrafficPermission, emit: Emit): void {
  const spec = mtp.spec ?? {}
  if (spec.targetRef) targetRefRules('spec.targetRef', spec.targetRef, MTP_TOP_KINDS, emit)
  const from = spec.from ?? []
  if (spec.rules !== undefined)
    emit(
      'mtp.rules',
      'spec.rules',
      'the rules form (SPIFFE ID matches, Kuma 2.12+) is not supported by zonegate: write the permission with spec.from[] (targetRef kind Mesh, MeshSubset with kuma.io/service, or MeshService) and default.action',
    )
  else if (from.length === 0) emit('mtp.from', 'spec.from', 'needs at least one item')
  from.forEach((item, i) => {
    const path = `spec.from[${i}]`
    if (!item.targetRef) emit('policy.target-ref-kind', `${path}.targetRef.kind`, 'must be defined', path)
    else targetRefRules(`${path}.targetRef`, item.targetRef, MTP_FROM_KINDS, emit)
    if (!item.default?.action)
      emit('mtp.action', `${path}.default.action`, 'must be defined', item.default ? `${path}.default` : path)
  })
}
