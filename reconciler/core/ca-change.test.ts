import { describe, expect, it } from 'vitest'
import { CA_CHANGE_MESSAGE, caChangeViolations, mtlsBackendsOf } from './ca-change.js'
import { validateSnapshot } from './validate/index.js'

const mesh = (backend?: string) =>
  backend
    ? `type: Mesh\nname: default\nmtls:\n  enabledBackend: ${backend}\n  backends:\n  - name: ${backend}\n    type: builtin\n`
    : 'type: Mesh\nname: default\n'
const resources = (yaml: string) =>
  validateSnapshot({ revision: 't', files: new Map([['meshes/default.yaml', yaml]]) }).resources

describe('ca change (Kuma mesh manager rule)', () => {
  it('ca change - enabledBackend changed while mTLS stays on is refused at mtls.enabledBackend', () => {
    const v = caChangeViolations(mtlsBackendsOf(resources(mesh('ca-1'))), resources(mesh('ca-2')))
    expect(v).toEqual([
      {
        file: 'meshes/default.yaml',
        line: 4,
        column: 19,
        kind: 'Mesh',
        name: 'default',
        path: 'mtls.enabledBackend',
        rule: 'mesh.mtls-ca-change',
        message: `${CA_CHANGE_MESSAGE} (was "ca-1", now "ca-2")`,
      },
    ])
  })
  it.each([
    ['mTLS turned off', mesh('ca-1'), mesh()],
    ['mTLS turned on', mesh(), mesh('ca-2')],
    ['unchanged', mesh('ca-1'), mesh('ca-1')],
  ])('ca change - %s is allowed', (_t, before, after) => {
    expect(caChangeViolations(mtlsBackendsOf(resources(before)), resources(after))).toEqual([])
  })
})
