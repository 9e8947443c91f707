import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  folderRevision,
  formatRevision,
  gitRevision,
  parseRevision,
  type Revision,
  shaOfEvent,
  shaOfRevision,
} from './revision.js'

const SHA1 = 'a'.repeat(40)
const SHA256 = `${'0123456789abcdef'.repeat(4)}`

const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n })
/** Git ref names never contain `:` (git check-ref-format); `@`, `/` and dots they may. */
const ref = fc.string({ unit: fc.constantFrom(...'ab-_/.@9M'), minLength: 1, maxLength: 20 })
const revision: fc.Arbitrary<Revision> = fc.oneof(
  fc.record({ kind: fc.constant('git' as const), ref, algorithm: fc.constant('sha1' as const), sha: hex(40) }),
  fc.record({ kind: fc.constant('git' as const), ref, algorithm: fc.constant('sha256' as const), sha: hex(64) }),
  fc.record({ kind: fc.constant('folder' as const), path: fc.string() }),
)

describe('revision', () => {
  it.each([
    [gitRevision('main', SHA1), { kind: 'git', ref: 'main', algorithm: 'sha1', sha: SHA1 }],
    [gitRevision('main', SHA256), { kind: 'git', ref: 'main', algorithm: 'sha256', sha: SHA256 }],
    [`release@2@sha1:${SHA1}`, { kind: 'git', ref: 'release@2', algorithm: 'sha1', sha: SHA1 }],
    ['path:/x', { kind: 'folder', path: '/x' }],
    [`path:/repo@sha1:${SHA1}`, { kind: 'folder', path: `/repo@sha1:${SHA1}` }],
    [folderRevision('gitops-example'), { kind: 'folder', path: 'gitops-example' }],
  ])('revision - parseRevision(%s)', (text, parsed) => {
    expect(parseRevision(text)).toEqual(parsed)
  })

  it.each([
    [`main@sha1:${SHA256}`, 'a SHA-256 id under sha1'],
    [`main@sha256:${SHA1}`, 'a SHA-1 id under sha256'],
    [`main@sha1:${SHA1.slice(1)}`, 'a truncated sha'],
    [`main@sha1:${SHA1.toUpperCase()}`, 'uppercase hex'],
    [`main@md5:${SHA1}`, 'an unknown algorithm'],
    [SHA1, 'a bare sha'],
    ['', 'nothing'],
  ])('revision - %s is not a revision (%s)', (text) => {
    expect(parseRevision(text)).toBeUndefined()
    expect(shaOfRevision(text)).toBeUndefined()
  })

  it('revision - the algorithm follows the length of the commit id', () => {
    expect(gitRevision('main', SHA1)).toBe(`main@sha1:${SHA1}`)
    expect(gitRevision('main', SHA256)).toBe(`main@sha256:${SHA256}`)
    // whatever the source resolved is written as given (a pass never throws on it)
    expect(gitRevision('main', 'abc')).toBe('main@sha1:abc')
  })

  it('revision - parse is the inverse of format (property)', () => {
    fc.assert(
      fc.property(revision, (r) => {
        expect(parseRevision(formatRevision(r))).toEqual(r)
      }),
    )
  })

  it('revision - a parsed string formats back to itself (property)', () => {
    const text = fc.oneof(
      fc.string(),
      fc.tuple(ref, fc.constantFrom('@sha1:', '@sha256:'), hex(40), hex(24)).map(([r, a, h, more]) => r + a + h + more),
      revision.map(formatRevision),
    )
    fc.assert(
      fc.property(text, (s) => {
        const r = parseRevision(s)
        if (r) expect(formatRevision(r)).toBe(s)
      }),
    )
  })

  it('revision - shaOfRevision and shaOfEvent', () => {
    expect(shaOfRevision(`main@sha1:${SHA1}`)).toBe(SHA1)
    expect(shaOfRevision(`main@sha256:${SHA256}`)).toBe(SHA256)
    expect(shaOfRevision('path:/x')).toBeUndefined()
    expect(shaOfRevision(undefined)).toBeUndefined()
    expect(shaOfEvent({ revision: 'path:/x', sha: 'abc' })).toBe('abc')
    expect(shaOfEvent({ revision: `main@sha1:${SHA1}` })).toBe(SHA1)
  })
})
