import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compileZoneTables, orderTableKeys } from '../../reconciler/core/compile.js'
import type { Snapshot } from '../../reconciler/core/model.js'
import { validateSnapshot } from '../../reconciler/core/validate/index.js'
import { readFolderSnapshot } from '../../reconciler/source/folder-source.js'

/**
 * Determinism of the whole front half of a pass: the documents of every golden case, redistributed over any
 * number of files in any order (and under any file names), validate and compile to the same bytes as
 * expected.json.
 */
const root = join(import.meta.dirname, '../fixtures/compile')
const cases = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort()

const decoder = new TextDecoder()
const documentsOf = (text: string) =>
  text
    .split(/^---\s*$/m)
    .map((d) => d.trim())
    .filter((d) => d !== '')

const compileBytes = (snapshot: Snapshot) => {
  const result = validateSnapshot(snapshot)
  expect(result.violations).toEqual([])
  return `${JSON.stringify([...compileZoneTables(result.resources).values()].map(orderTableKeys), null, 2)}\n`
}

describe('compile determinism', () => {
  it('compile determinism - shuffling files and documents never changes the output bytes (property)', async () => {
    const inputs = await Promise.all(
      cases.map(async (name) => {
        const snap = await readFolderSnapshot(join(root, name, 'input'))
        const docs = [...snap.files.values()].flatMap((b) => documentsOf(typeof b === 'string' ? b : decoder.decode(b)))
        return { name, docs, expected: readFileSync(join(root, name, 'expected.json'), 'utf8') }
      }),
    )
    expect(inputs.every((i) => i.docs.length > 1)).toBe(true)
    const arb = fc.integer({ min: 0, max: inputs.length - 1 }).chain((i) => {
      const docs = (inputs[i] as (typeof inputs)[number]).docs
      return fc.tuple(
        fc.constant(i),
        fc.shuffledSubarray(docs, { minLength: docs.length, maxLength: docs.length }),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: docs.length, maxLength: docs.length }),
        fc.shuffledSubarray(['a', 'b', 'c', 'd', 'e'], { minLength: 5, maxLength: 5 }),
      )
    })
    fc.assert(
      fc.property(arb, ([i, docs, fileOf, names]) => {
        const byFile = new Map<string, string[]>()
        docs.forEach((doc, d) => {
          const file = `${names[fileOf[d] as number]}/${fileOf[d]}.yaml`
          byFile.set(file, [...(byFile.get(file) ?? []), doc])
        })
        const files = new Map([...byFile].map(([f, ds]) => [f, `${ds.join('\n---\n')}\n`]))
        const input = inputs[i] as (typeof inputs)[number]
        expect(compileBytes({ revision: 'test', files })).toBe(input.expected)
      }),
      { numRuns: 60 },
    )
  })
})
