import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson, canonicalJsonWalk } from './digest.js'

describe('canonical JSON', () => {
  it('canonical json - the fast path equals the reference walk for any JSON value (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(canonicalJson(v)).toBe(canonicalJsonWalk(v))
      }),
      { numRuns: 500 },
    )
  })

  it('canonical json - keys sorted, undefined members dropped, integer-like and __proto__ keys kept in order', () => {
    expect(canonicalJson({ b: 1, a: [3, undefined], c: undefined })).toBe('{"a":[3,null],"b":1}')
    expect(canonicalJson({ 10: 'x', 9: 'y', a: 1 })).toBe('{"10":"x","9":"y","a":1}')
    expect(canonicalJson(JSON.parse('{"z":1,"__proto__":{"b":2,"a":1}}'))).toBe('{"__proto__":{"a":1,"b":2},"z":1}')
    expect(canonicalJson(undefined)).toBe('null')
  })
})
