import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { ParsedDocument } from '../model.js'
import { parseBlockSubset } from './block-yaml.js'
import { ParseLimits, parseSnapshot } from './index.js'

/**
 * The fast block-subset parser must give exactly what the `yaml` path of parseSnapshot gives (documents,
 * indexes, values, positions, key positions, location), or give up (undefined) so that path runs.
 */
const plain = (d: ParsedDocument) => ({
  file: d.file,
  index: d.index,
  location: d.location,
  value: d.value,
  positions: Object.fromEntries(d.positions),
  keyPositions: Object.fromEntries(d.keyPositions),
})
const viaYaml = (text: string) =>
  parseSnapshot({ revision: 't', files: new Map([['f.yaml', text]]) }, ParseLimits, { blockSubset: false })
const fast = (text: string) => parseBlockSubset(text, 'f.yaml', ParseLimits.maxDocuments)

/** When the fast parser accepts `text`, its result equals the yaml path's, which must then have no violation. */
const agrees = (text: string): boolean => {
  const got = fast(text)
  if (got === undefined) return false
  const want = viaYaml(text)
  expect(want.violations).toEqual([])
  expect(got.map(plain)).toEqual(want.documents.map(plain))
  return true
}

describe('block-yaml', () => {
  // [title, text]: inside the subset, the same result as the yaml path
  const inside: [string, string][] = [
    ['mapping with nested mapping', 'type: Mesh\nname: a\nmtls:\n  enabledBackend: ca-1\n'],
    ['comments, blank lines, trailing comments', '# head\n\ntype: Mesh # t\n  # odd comment\nname: a   \n'],
    ['sequence at the parent key indentation', 'x:\n- a: 1\n  b: two\n- c\nz: 2\n'],
    ['YAML 1.1 booleans (Kuma reads YAML with go-yaml v2)', 'a: yes\nb: Off\nc: n\nd: ON\ne: "yes"\nf: nope\n'],
    ['indented sequence of mappings', 'x:\n    -   a: 1\n        b: x[y\n    - 2\n'],
    ['tags written as map entries', 'tags:\n  kuma.io/service: ext-1\n  kuma.io/protocol: http\n'],
    [
      'core schema scalars',
      'a: true\nb: False\nc: null\nd: 0x1F\ne: 0o17\nf: 1e3\ng: 1.50\nh: .inf\ni: .NaN\nj: 007\n',
    ],
    ['strings that look like other things', 'a: 127.0.0.1:8000\nb: 1d\nc: fe80::1\nd: a#b\ne: x, y [z] {w}\nf: /p\n'],
    ['quoted scalars', 'a: "127.0.0.1"\nb: \'true\'\nc: "a # b"   # c\nd: ""\n'],
    ['documents and empty documents', '# c\n---\na: 1\n---\n# only a comment\n---\nb: 2\n---   \n'],
    ['leading separator', '---\na: 1\n'],
    ['no final newline', 'a: 1\nb:\n  c: d'],
    ['compact nested sequences', 'a:\n- - b\n  - - c: 1\n      d: 2\n- e\n'],
    ['key characters', 'a_b-c.d/e: 1\n_x: 2\nnot-null: 3\nconstructor: 4\n'],
  ]
  it.each(inside)('block-yaml - %s: same as the yaml path', (_title, text) => {
    expect(agrees(text)).toBe(true)
  })

  // [title, text]: outside the subset, left to the yaml path
  const outside: [string, string][] = [
    ['flow collection', 'a: [1, 2]\n'],
    ['a YAML 1.1 boolean key', 'on: 1\n'],
    ['anchor and alias', 'a: &x 1\nb: *x\n'],
    ['tag', 'a: !!str 1\n'],
    ['block scalar', 'a: |\n  text\n'],
    ['multi-line plain scalar', 'a: one\n  two\n'],
    ['empty value', 'a:\nb: 1\n'],
    ['duplicate key', 'a: 1\na: 2\n'],
    ['boolean key', 'true: 1\n'],
    ['quoted key', '"a": 1\n'],
    ['escape in a double-quoted scalar', 'a: "x\\ty"\n'],
    ['single quote escape', "a: 'it''s'\n"],
    ['tab', 'a:\t1\n'],
    ['CRLF', 'a: 1\r\n'],
    ['non-ASCII value', 'a: café\n'],
    ['directive', '%YAML 1.2\n---\na: 1\n'],
    ['document end marker', 'a: 1\n...\n'],
    ['content after ---', '--- a: 1\n'],
    ['sequence document', '- a\n'],
    ['scalar document', 'hello\n'],
    ['indented document', '  a: 1\n'],
    ['inconsistent indentation', 'a:\n    b: 1\n  c: 2\n'],
    ['entry after a scalar value', 'a: 1\n- b\n'],
    ['colon in a plain scalar', 'a: b: c\n'],
    ['negative number', 'a: -1\n'],
    ['__proto__ key', '__proto__: 1\n'],
    ['comment right after a quoted scalar', 'a: "x"#c\n'],
  ]
  it.each(outside)('block-yaml - %s: left to the yaml path', (_title, text) => {
    expect(fast(text)).toBeUndefined()
  })

  it('block-yaml - more than maxDocuments documents are left to the yaml path', () => {
    expect(parseBlockSubset('a: 1\n---\na: 1\n---\n', 'f.yaml', 2)).toBeUndefined() // 3 documents, one empty
    expect(parseBlockSubset('a: 1\n---\na: 1\n', 'f.yaml', 2)).toHaveLength(2)
  })
})

describe('block-yaml properties', () => {
  const key = fc.oneof(
    { arbitrary: fc.constantFrom('a', 'b', 'name', 'kuma.io/service', 'x_y', 'k-1', 'a.b', 'constructor'), weight: 40 },
    { arbitrary: fc.constantFrom('True', 'null', '1', '"a"', 'a b', '? a'), weight: 1 },
  )
  const common = fc.constantFrom(
    'v',
    '1',
    '0',
    '1.5',
    '1e3',
    '0x1f',
    '0o7',
    '.inf',
    '.nan',
    'null',
    'true',
    'FALSE',
    'yes',
    '127.0.0.1:80',
    'a b',
    'a  # c',
    'a:b',
    'x#y',
    '"q"',
    "'q'",
    '"a # b"',
    '.5',
    '00',
    '1.',
    '/p',
  )
  const odd = fc.constantFrom(
    '-2',
    '~',
    'a: b',
    "'a''b'",
    '[a]',
    '{a: 1}',
    '&x v',
    '*x',
    '!t v',
    '|',
    '@x',
    '`x',
    '%x',
    '"x" #c',
    'ü',
    '',
  )
  const scalar = fc.oneof({ arbitrary: common, weight: 40 }, { arbitrary: odd, weight: 1 })
  type Tree = { map: [string, Tree][] } | { seq: Tree[] } | { scalar: string }
  const tree: fc.Arbitrary<Tree> = fc.letrec<{ node: Tree }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      scalar.map((s) => ({ scalar: s })),
      fc
        .uniqueArray(fc.tuple(key, tie('node')), { minLength: 1, maxLength: 4, selector: ([k]) => k })
        .map((m) => ({ map: m })),
      fc.array(tie('node'), { minLength: 1, maxLength: 3 }).map((s) => ({ seq: s })),
    ),
  })).node
  const style = fc.record({
    indent: fc.integer({ min: 1, max: 4 }),
    sameIndentSeq: fc.boolean(),
    comment: fc.boolean(),
  })

  /** Renders a tree as block YAML (the value of a key at column `col`). */
  const render = (t: Tree, col: number, s: { indent: number; sameIndentSeq: boolean; comment: boolean }): string => {
    const pad = ' '.repeat(col)
    if ('scalar' in t) return ` ${t.scalar}${s.comment ? ' # c' : ''}\n`
    if ('map' in t)
      return `\n${t.map.map(([k, v]) => `${pad}${k}:${render(v, col + s.indent, s)}`).join(s.comment ? `${pad}# c\n` : '')}`
    const at = s.sameIndentSeq ? Math.max(0, col - s.indent) : col
    return `\n${t.seq.map((v) => `${' '.repeat(at)}-${render(v, at + 2, s).replace(/^\n */, ' ')}`).join('')}`
  }
  const docs = fc.array(
    fc.tuple(
      fc.uniqueArray(fc.tuple(key, tree), { minLength: 1, maxLength: 4, selector: ([k]) => k }),
      style,
      fc.boolean(),
    ),
    { minLength: 1, maxLength: 3 },
  )
  const text = docs.map((ds) =>
    ds
      .map(([entries, s, blank]) => entries.map(([k, v]) => `${k}:${render(v, s.indent, s)}`).join(blank ? '\n' : ''))
      .join('---\n'),
  )

  it('block-yaml - whatever it accepts of generated block YAML equals the yaml path', () => {
    let accepted = 0
    fc.assert(
      fc.property(text, (t) => {
        if (agrees(t)) accepted++
      }),
      { numRuns: 300 },
    )
    expect(accepted).toBeGreaterThan(50) // the generator does reach the fast path
  })

  it('block-yaml - whatever it accepts of mutated block YAML equals the yaml path', () => {
    const tokens = [' ', '  ', '\n', '- ', ': ', ':', '#', ' #', '---\n', '"', "'", '-', '.', '1', 'a']
    const edit = fc.tuple(fc.nat(), fc.nat({ max: 3 }), fc.constantFrom(...tokens))
    fc.assert(
      fc.property(text, fc.array(edit, { minLength: 1, maxLength: 4 }), (t, edits) => {
        let out = t
        for (const [at, del, token] of edits) {
          const i = at % (out.length + 1)
          out = out.slice(0, i) + token + out.slice(i + del)
        }
        agrees(out)
      }),
      { numRuns: 300 },
    )
  })
})
