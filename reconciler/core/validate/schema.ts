import type { Kind } from '../../../schemas/resources.js'
import { resourceSchemas, resourceShapeValidators } from '../../../schemas/validators.js'
import type { Violation } from '../../../schemas/violation.js'
import type { ParsedDocument } from '../model.js'
import { joinPath, locate, pathOf, pointerSegments } from './locate.js'

/** Rule id of an unknown field (a warning: Kuma ignores unknown fields, we name them to catch typos). */
export const UNKNOWN_FIELD_RULE = 'schema.additionalProperties'

const fieldNames = new Map<Kind, Set<string>>()
/** Every property name of a kind's schema (for the snake_case hint: Kuma's protos declare these camelCase). */
function knownFields(kind: Kind): Set<string> {
  let names = fieldNames.get(kind)
  if (!names) {
    const out = new Set<string>()
    const visit = (x: unknown) => {
      if (x === null || typeof x !== 'object') return
      const props = (x as { properties?: Record<string, unknown> }).properties
      if (props) for (const k of Object.keys(props)) out.add(k)
      for (const v of Object.values(x)) visit(v)
    }
    visit(resourceSchemas[kind])
    names = out
    fieldNames.set(kind, names)
  }
  return names
}

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
      const camel = field.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())
      const hint = camel !== field && knownFields(kind).has(camel) ? `; the field is "${camel}"` : ''
      const message = `unknown field "${field}" (ignored by Kuma${hint})`
      out.warnings.push({ file: doc.file, ...at, kind, name, path, rule: UNKNOWN_FIELD_RULE, message })
      continue
    }
    const at = locate(doc, base)
    const message = e.keyword === 'const' && base === 'type' ? `must be "${kind}"` : (e.message ?? e.keyword)
    out.violations.push({ file: doc.file, ...at, kind, name, path: base, rule: `schema.${e.keyword}`, message })
  }
  return out
}
