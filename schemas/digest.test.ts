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

  it('canonical json - keys Object.prototype also has, toJSON, and keys present in some objects only', () => {
    // a key list that names "constructor" must not make JSON.stringify read Object.prototype.constructor
    expect(canonicalJson([JSON.parse('{"constructor":1}'), { a: 1 }])).toBe('[{"constructor":1},{"a":1}]')
    expect(canonicalJson([JSON.parse('{"__proto__":1}'), { a: 1 }])).toBe('[{"__proto__":1},{"a":1}]')
    expect(canonicalJson({ b: { toJSON: () => ({ y: 1, x: 2 }) }, a: 1 })).toBe('{"a":1,"b":{"x":2,"y":1}}')
    expect(canonicalJson([{ b: 1, a: 2 }, { c: { b: null } }])).toBe('[{"a":2,"b":1},{"c":{"b":null}}]')
  })

  it('canonical json - equals the reference walk for tables of routes (property)', () => {
    const route = fc.record(
      {
        sni: fc.string(),
        mesh: fc.string(),
        kind: fc.constantFrom('external', 'cross-zone'),
        upstreams: fc.array(
          fc.record(
            { address: fc.string(), port: fc.integer(), weight: fc.integer(), priority: fc.integer() },
            {
              requiredKeys: ['address', 'port'],
            },
          ),
        ),
        allow: fc.array(fc.string()),
      },
      { requiredKeys: ['sni', 'upstreams'] },
    )
    fc.assert(
      fc.property(fc.record({ zone: fc.string(), routes: fc.array(route) }), (v) => {
        expect(canonicalJson(v)).toBe(canonicalJsonWalk(v))
      }),
      { numRuns: 300 },
    )
  })
})
