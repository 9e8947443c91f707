import type { Kind } from '../../../schemas/resources.js'
import { resourceShapeValidators } from '../../../schemas/validators.js'
import type { Violation } from '../../../schemas/violation.js'
import type { ParsedDocument } from '../model.js'
import { joinPath, locate, pathOf, pointerSegments } from './locate.js'

/** Rule id of an unknown field (a warning: Kuma ignores unknown fields, we name them to catch typos). */
export const UNKNOWN_FIELD_RULE = 'schema.additionalProperties'

export interface SchemaOutcome {
  violations: Violation[]
  warnings: Violation[]
}

/**
 * Checks a document of a known kind against its JSON Schema (types and known fields). Unknown fields become
 * warnings at the key's position; every other schema error is a violation with rule `schema.<keyword>`,
 * Kuma's dotted path and the value's position. Pure.
 */
export function validateShape(doc: ParsedDocument, kind: Kind, name: string): SchemaOutcome {
  const out: SchemaOutcome = { violations: [], warnings: [] }
  const validate = resourceShapeValidators[kind]
  if (validate(doc.value)) return out
  for (const e of validate.errors ?? []) {
    const base = pathOf(pointerSegments(e.instancePath, doc.value))
    if (e.keyword === 'additionalProperties') {
      const field = String((e.params as { additionalProperty: string }).additionalProperty)
      const segs = pointerSegments(e.instancePath, doc.value)
      const parent = [...segs].reverse().find((s): s is string => typeof s === 'string')
      const path = joinPath(base, field, parent)
      const at = locate(doc, path, { key: true })
      const message = `unknown field "${field}" (ignored by Kuma)`
      out.warnings.push({ file: doc.file, ...at, kind, name, path, rule: UNKNOWN_FIELD_RULE, message })
      continue
    }
    const at = locate(doc, base)
    const message = e.keyword === 'const' && base === 'type' ? `must be "${kind}"` : (e.message ?? e.keyword)
    out.violations.push({ file: doc.file, ...at, kind, name, path: base, rule: `schema.${e.keyword}`, message })
  }
  return out
}
