import { describe, expect, it } from 'vitest'
import type { MeshTrafficPermission, TargetRef } from '../../schemas/resources.js'
import { computeRouteAccess } from './permissions.js'

/** MeshTrafficPermission → who may use an external route (docs/permissions.md). */
const p = (
  name: string,
  top: TargetRef | undefined,
  from: [TargetRef, 'Allow' | 'Deny' | 'AllowWithShadowDeny'][],
  mesh = 'default',
): MeshTrafficPermission => ({
  type: 'MeshTrafficPermission',
  name,
  mesh,
  spec: {
    ...(top ? { targetRef: top } : {}),
    from: from.map(([targetRef, action]) => ({ targetRef, default: { action } })),
  },
})
const MESH: TargetRef = { kind: 'Mesh' }
const svc = (name: string): TargetRef => ({ kind: 'MeshService', name })
const subset = (tags: Record<string, string>): TargetRef => ({ kind: 'MeshSubset', tags })
const access = (policies: MeshTrafficPermission[], tags: Record<string, string> = {}) =>
  computeRouteAccess('default', 'httpbin', { 'kuma.io/service': 'httpbin', ...tags }, policies)

describe('permissions', () => {
  it.each([
    ['no permission: nobody (Kuma 2.x)', [], { allow: [], deny: [] }],
    ['Allow from Mesh: everyone', [p('a', MESH, [[MESH, 'Allow']])], { allow: ['*'], deny: [] }],
    ['AllowWithShadowDeny allows', [p('a', undefined, [[MESH, 'AllowWithShadowDeny']])], { allow: ['*'], deny: [] }],
    [
      'Allow one service by MeshSubset kuma.io/service and one by MeshService',
      [
        p('a', svc('httpbin'), [
          [subset({ 'kuma.io/service': 'web' }), 'Allow'],
          [svc('api'), 'Allow'],
        ]),
      ],
      { allow: ['api', 'web'], deny: [] },
    ],
    [
      'a more specific from wins over Mesh: Allow Mesh, Deny bad',
      [
        p('a', MESH, [
          [svc('bad'), 'Deny'],
          [MESH, 'Allow'],
        ]),
      ],
      { allow: ['*'], deny: ['bad'] },
    ],
    [
      'a more specific top-level targetRef wins: Mesh-wide Deny web, httpbin Allow web',
      [p('mesh-wide', MESH, [[svc('web'), 'Deny']]), p('z-httpbin', svc('httpbin'), [[svc('web'), 'Allow']])],
      { allow: ['web'], deny: [] },
    ],
    [
      'same kind: the lexicographically smaller name wins',
      [p('b', svc('httpbin'), [[svc('web'), 'Allow']]), p('a', svc('httpbin'), [[svc('web'), 'Deny']])],
      { allow: [], deny: [] },
    ],
    ['a policy for another service does not apply', [p('a', svc('other'), [[MESH, 'Allow']])], { allow: [], deny: [] }],
    ['a policy of another mesh does not apply', [p('a', MESH, [[MESH, 'Allow']], 'm2')], { allow: [], deny: [] }],
    [
      'MeshSubset top-level matches on the ExternalService tags',
      [p('a', subset({ env: 'prod' }), [[MESH, 'Allow']])],
      { allow: ['*'], deny: [] },
      { env: 'prod' },
    ],
    [
      'MeshSubset top-level with other tags does not match',
      [p('a', subset({ env: 'dev' }), [[MESH, 'Allow']])],
      { allow: [], deny: [] },
      { env: 'prod' },
    ],
    [
      'fail-closed: an Allow on tags the egress cannot see allows nobody',
      [p('a', MESH, [[subset({ 'kuma.io/service': 'web', version: 'v1' }), 'Allow']])],
      { allow: [], deny: [] },
    ],
    [
      'fail-closed: a Deny on tags the egress cannot see denies the whole service',
      [
        p('a', MESH, [
          [MESH, 'Allow'],
          [subset({ 'kuma.io/service': 'web', version: 'v1' }), 'Deny'],
        ]),
      ],
      { allow: ['*'], deny: ['web'] },
    ],
  ] as [string, MeshTrafficPermission[], { allow: string[]; deny: string[] }, Record<string, string>?][])(
    'permissions - %s',
    (_title, policies, expected, tags) => {
      expect(access(policies, tags)).toEqual(expected)
    },
  )
})
