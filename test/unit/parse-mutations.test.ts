import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseSnapshot } from '../../reconciler/core/parse/index.js'

/** Property test: parseSnapshot never throws and stays bounded on mutated gitops-example files. */
const exampleRoot = join(import.meta.dirname, '../../gitops-example')
const exampleFiles = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? exampleFiles(join(dir, n)) : [join(dir, n)]))
const examples = exampleFiles(exampleRoot).map((f) => [relative(exampleRoot, f), readFileSync(f, 'utf8')] as const)

const bounded = (content: string) => {
  const started = performance.now()
  const r = parseSnapshot({ revision: 't', files: new Map([['p.yaml', content]]) })
  expect(performance.now() - started).toBeLessThan(2_000)
  for (const v of r.violations) {
    expect(v.line).toBeGreaterThanOrEqual(1)
    expect(v.column).toBeGreaterThanOrEqual(1)
    expect(v.rule).toMatch(/^parse\./)
  }
}

describe('parse mutations', () => {
  it('parse - never throws and stays bounded on mutated gitops-example files', () => {
    expect(examples.length).toBeGreaterThan(5)
    const tokens = [
      '[',
      ']',
      '{',
      '}',
      ':',
      '- ',
      '&a ',
      '*a',
      '\n',
      '  ',
      '"',
      "'",
      '---\n',
      '? ',
      '|',
      '#',
      '\t',
      '\u0000',
    ]
    const mutation = fc.record({
      file: fc.nat({ max: examples.length - 1 }),
      edits: fc.array(fc.tuple(fc.nat(), fc.nat({ max: 20 }), fc.constantFrom(...tokens), fc.nat({ max: 50 })), {
        maxLength: 8,
      }),
    })
    fc.assert(
      fc.property(mutation, ({ file, edits }) => {
        let text = examples[file]![1]
        for (const [at, del, token, times] of edits) {
          const i = at % (text.length + 1)
          text = text.slice(0, i) + token.repeat(times) + text.slice(i + del)
        }
        bounded(text)
      }),
      { numRuns: 200 },
    )
  })
})
