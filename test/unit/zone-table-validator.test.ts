import { readFileSync } from 'node:fs'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { describe, expect, it } from 'vitest'
import { schemaProblems } from '../../schemas/schema-problems.js'
import zoneTableSchema from '../../schemas/zone-table.schema.json' with { type: 'json' }
import { validateZoneTableShape } from '../../schemas/zone-table-shape.js'
import { ZONE_TABLE_VALIDATOR, zoneTableValidatorSource } from '../../scripts/gen-validators.js'
import { largeTable } from '../helpers/large-table.js'

describe('zone table validator (generated ahead of time)', () => {
  it('zone table validator - the generated file is up to date with the schema (npm run gen:validators)', () => {
    const fresh = readFileSync(ZONE_TABLE_VALIDATOR, 'utf8') === zoneTableValidatorSource()
    expect(fresh, `${ZONE_TABLE_VALIDATOR} is stale: run npm run gen:validators`).toBe(true)
  })

  it('zone table validator - reports exactly what ajv compiling the schema at run time reports', () => {
    const ajv = new Ajv2020({ allErrors: true, strict: true })
    const runtime = ajv.compile(zoneTableSchema)
    const good = largeTable(3)
    const cases: unknown[] = [
      good,
      { ...good, extra: 1 },
      { ...good, revision: '' },
      { ...good, routes: [{ ...good.routes[0], upstreams: [{ address: '', port: 70000, weight: -1 }] }] },
      { ...good, zone: 'EU_west' },
      { ...good, egresses: 'x' },
      42,
      null,
    ]
    for (const c of cases) {
      const want = runtime(c) ? [] : schemaProblems(runtime.errors)
      expect(validateZoneTableShape(c)).toEqual(want)
    }
    expect(validateZoneTableShape({ ...good, revision: '' }).length).toBeGreaterThan(0)
  })
})
