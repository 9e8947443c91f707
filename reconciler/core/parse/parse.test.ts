import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ParseLimits, parseSnapshot } from './index.js'

const snap = (files: Record<string, string | Uint8Array>) => ({ revision: 't', files: new Map(Object.entries(files)) })
const one = (content: string | Uint8Array, name = 'f.yaml') => parseSnapshot(snap({ [name]: content }))
const brief = (r: ReturnType<typeof parseSnapshot>) => r.violations.map((v) => `${v.line}:${v.column} ${v.rule}`)

describe('parse', () => {
  it('parse - multi-document file keeps file, index, location and every field position', () => {
    const r = one(
      '# c\ntype: Mesh\nname: a\n---\n---\ntype: ExternalService\nname: e\ntags:\n  kuma.io/service: e\nx:\n- a: 1\n',
    )
    expect(r.violations).toEqual([])
    expect(r.documents.map((d) => [d.index, d.location])).toEqual([
      [0, { file: 'f.yaml', line: 2, column: 1 }],
      [2, { file: 'f.yaml', line: 6, column: 1 }],
    ])
    const d = r.documents[1]!
    expect(d.positions.get('tags["kuma.io/service"]')).toEqual({ line: 9, column: 20 })
    expect(d.keyPositions.get('tags["kuma.io/service"]')).toEqual({ line: 9, column: 3 })
    expect(d.positions.get('x[0].a')).toEqual({ line: 11, column: 6 })
    expect(d.value).toEqual({ type: 'ExternalService', name: 'e', tags: { 'kuma.io/service': 'e' }, x: [{ a: 1 }] })
  })

  it('parse - only *.yaml and *.yml files are read, in path order', () => {
    const r = parseSnapshot(snap({ 'b.yml': 'a: 1', 'a.yaml': 'a: 1', 'c.txt': ': : :' }))
    expect(r.documents.map((d) => d.file)).toEqual(['a.yaml', 'b.yml'])
  })

  // [title, content, expected `line:col rule`]
  const hostile: [string, string | Uint8Array, string[]][] = [
    ['syntax error has a position', 'a: 1\nb: [\n', ['3:1 parse.yaml-syntax']],
    ['duplicate key', 'type: Mesh\nname: a\nname: b\n', ['3:1 parse.duplicate-key']],
    ['sequence document', '- a\n- b\n', ['1:1 parse.not-an-object']],
    ['scalar document', 'hello\n', ['1:1 parse.not-an-object']],
    ['file over 1 MiB', `a: "${'x'.repeat(ParseLimits.maxFileBytes)}"\n`, ['1:1 parse.file-too-large']],
    ['invalid UTF-8', new Uint8Array([0x61, 0x3a, 0x0a, 0x62, 0x3a, 0x20, 0xc3, 0x28]), ['2:4 parse.invalid-utf8']],
    ['flow nesting bomb', `a: ${'['.repeat(100_000)}`, ['1:1 parse.too-deep']],
    ['block sequence bomb', `${'- '.repeat(300)}x\n`, ['1:1 parse.too-deep']],
    ['nesting deeper than 64', `a: ${'['.repeat(70)}${']'.repeat(70)}\n`, ['1:67 parse.too-deep']],
    [
      'alias bomb',
      'a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n',
      ['1:1 parse.alias-limit'],
    ],
    ['nested explicit keys stay fast', `${'? '.repeat(30)}type: Mesh\nname: a\n`, []],
    ['explicit keys deeper than 64', `${'? '.repeat(70)}a\n`, ['1:129 parse.too-deep']],
    ['more than 10,000 documents', 'a: 1\n---\n'.repeat(10_001), ['20000:1 parse.too-many-documents']],
  ]
  it.each(hostile)('parse - %s', (_title, content, expected) => {
    const started = Date.now()
    expect(brief(one(content))).toEqual(expected)
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('parse - a UTF-8 byte order mark is accepted', () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('type: Mesh\nname: a\n')])
    expect(one(bytes).documents[0]?.location).toEqual({ file: 'f.yaml', line: 1, column: 1 })
  })
})

describe('parse properties', () => {
  const bounded = (content: string | Uint8Array) => {
    const started = performance.now()
    const r = parseSnapshot(snap({ 'p.yaml': content }))
    expect(performance.now() - started).toBeLessThan(2_000)
    for (const v of r.violations) {
      expect(v.line).toBeGreaterThanOrEqual(1)
      expect(v.column).toBeGreaterThanOrEqual(1)
      expect(v.rule).toMatch(/^parse\./)
    }
  }

  it('parse - never throws and stays bounded on random text', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 400 }), bounded), { numRuns: 150 })
  })

  it('parse - never throws and stays bounded on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), bounded), { numRuns: 150 })
  })
})
