import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { compileZoneTables, orderTableKeys } from '../../reconciler/core/compile.js'
import { validateSnapshot } from '../../reconciler/core/validate/index.js'
import { readFolderSnapshot } from '../../reconciler/source/folder-source.js'
import { tableDigest } from '../../schemas/digest.js'
import { validateZoneTableShape } from '../../schemas/validators.js'
import { formatViolation } from '../../schemas/violation.js'

/**
 * Golden tests of the compiler: test/fixtures/compile/<case>/input/ (a folder snapshot) → expected.json (the
 * list of zone tables, in zone order). Each case's README.md says what it shows. `UPDATE_GOLDEN=1` rewrites
 * expected.json; review the diff by hand against kuma-model.md §5 (the expected files are the spec).
 */
const root = join(import.meta.dirname, '../fixtures/compile')
const cases = readdirSync(root, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort()

async function compileFolder(input: string) {
  const result = validateSnapshot(await readFolderSnapshot(input))
  return { result, tables: [...compileZoneTables(result.resources).values()] }
}

describe('compile golden', () => {
  it('compile golden - the fixture set is not empty', () => {
    expect(cases.length).toBeGreaterThanOrEqual(8)
  })

  for (const name of cases) {
    it(`compile golden - ${name}`, async () => {
      const { result, tables } = await compileFolder(join(root, name, 'input'))
      expect(result.violations.map(formatViolation)).toEqual([])
      for (const t of tables) {
        expect(t.digest).toBe(tableDigest(t))
        expect(validateZoneTableShape(t)).toEqual([])
      }
      const actual = `${JSON.stringify(tables.map(orderTableKeys), null, 2)}\n`
      const expectedPath = join(root, name, 'expected.json')
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(expectedPath)) writeFileSync(expectedPath, actual)
      expect(actual).toBe(readFileSync(expectedPath, 'utf8'))
    })
  }
})
