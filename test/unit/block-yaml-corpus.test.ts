import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { generateSnapshot } from '../../benchmarks/validate.bench.js'
import type { ParsedDocument } from '../../reconciler/core/model.js'
import { parseBlockSubset } from '../../reconciler/core/parse/block-yaml.js'
import { ParseLimits, parseSnapshot } from '../../reconciler/core/parse/index.js'

/** The real files (gitops-example, the validate benchmark's snapshot) take the fast path and parse as with `yaml`. */
const plain = (d: ParsedDocument) => ({ ...d, positions: [...d.positions], keyPositions: [...d.keyPositions] })
const root = join(import.meta.dirname, '../../gitops-example')
const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)]))

describe('block-yaml corpus', () => {
  const corpus: [string, string][] = [
    ...walk(root).map((f): [string, string] => [f.slice(root.length + 1), readFileSync(f, 'utf8')]),
    ...[...generateSnapshot(300).files].map(([f, t]): [string, string] => [`bench/${f}`, t]),
  ]
  it.each(corpus)('block-yaml - %s takes the fast path with the same result as yaml', (file, text) => {
    const fast = parseBlockSubset(text, file, ParseLimits.maxDocuments)
    const slow = parseSnapshot({ revision: 't', files: new Map([[file, text]]) }, ParseLimits, { blockSubset: false })
    expect(slow.violations).toEqual([])
    expect(fast?.map(plain)).toEqual(slow.documents.map(plain))
  })
})
