import type { ErrorObject } from 'ajv/dist/2020.js'
import { type ShapeProblem, schemaProblems } from './schema-problems.js'
import generated from './zone-table.validate.gen.js'

const validateZoneTable = generated as unknown as { (value: unknown): boolean; errors?: ErrorObject[] | null }

/**
 * Checks a value against the table envelope schema (docs/design.md §3, schemas/zone-table.schema.json). The
 * validator is ajv's code for that schema generated ahead of time (scripts/gen-validators.ts), so a process
 * that only checks tables (the egress's admission worker) neither loads ajv nor compiles the schema. Returns
 * every problem as `{path (JSON pointer), message}`; an empty list means the shape is valid. Does not check the
 * digest. Pure.
 */
export function validateZoneTableShape(value: unknown): ShapeProblem[] {
  if (validateZoneTable(value)) return []
  return schemaProblems(validateZoneTable.errors)
}
