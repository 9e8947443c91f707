import { describe, expect, it } from 'vitest'
import { validateSnapshot } from './index.js'

/**
 * Documents of an unknown type. Kuma: `app/kumactl/cmd/apply/apply.go` resolves `type` through the registry
 * (`pkg/core/resources/registry/registry.go`) and fails with `invalid resource type "<T>"`; zonegate keeps that
 * message and adds what a new user needs: the Kubernetes format named as such with its Universal form, and a
 * did-you-mean for a near miss.
 */
const cases: { title: string; yaml: string; message: RegExp }[] = [
  {
    title: 'Kubernetes-format Mesh is named and its Universal form shown',
    yaml: 'apiVersion: kuma.io/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n  mtls: {}\n',
    message:
      /^invalid resource type "": this is Kuma's Kubernetes format .*Universal format: "type: Mesh", "name: default" at the top level and the fields of spec: inline/,
  },
  {
    title: 'Kubernetes-format ExternalService keeps its mesh',
    yaml: 'apiVersion: kuma.io/v1alpha1\nkind: ExternalService\nmesh: default\nmetadata:\n  name: httpbin\nspec: {}\n',
    message: /"type: ExternalService", "name: httpbin", mesh: default at the top level/,
  },
  {
    title: 'a misspelt type gets a did-you-mean',
    yaml: 'type: Mehs\nname: m\n',
    message: /^invalid resource type "Mehs" \(did you mean "Mesh"\?\)$/,
  },
  {
    title: 'wrong case gets a did-you-mean',
    yaml: 'type: zoneegress\nname: z\n',
    message: /\(did you mean "ZoneEgress"\?\)/,
  },
  {
    title: 'a plural gets a did-you-mean',
    yaml: 'type: ExternalServices\nname: e\n',
    message: /\(did you mean "ExternalService"\?\)/,
  },
  {
    title: 'a foreign type lists the known ones',
    yaml: 'type: Dataplane\nname: d\n',
    message: /^invalid resource type "Dataplane"\. Known types: Mesh, ZoneEgress/,
  },
  { title: 'no type at all', yaml: 'name: d\n', message: /^invalid resource type ""\. Known types:/ },
]

describe('resource type', () => {
  for (const c of cases)
    it(`resource type - ${c.title}`, () => {
      const r = validateSnapshot({ revision: 'path:x', files: new Map([['a.yaml', c.yaml]]) })
      expect(r.violations).toHaveLength(1)
      expect(r.violations[0]).toMatchObject({ rule: 'meta.invalid-type', file: 'a.yaml' })
      expect(r.violations[0]?.message).toMatch(c.message)
    })
})
