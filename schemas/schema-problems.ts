import type { ErrorObject } from 'ajv/dist/2020.js'

/** One schema problem: `path` is a JSON pointer (`/routes/0/port`, `''` for the root). */
export interface ShapeProblem {
  path: string
  message: string
}

/** Renders ajv errors as `{path, message}`, naming the property for `required`/`additionalProperties`. Pure. */
export function schemaProblems(errors: ErrorObject[] | null | undefined): ShapeProblem[] {
  return (errors ?? []).map((e) => {
    if (e.keyword === 'additionalProperties') {
      const p = String((e.params as { additionalProperty: string }).additionalProperty)
      return { path: `${e.instancePath}/${p}`, message: `unknown field "${p}"` }
    }
    if (e.keyword === 'required') {
      const p = String((e.params as { missingProperty: string }).missingProperty)
      return { path: `${e.instancePath}/${p}`, message: 'is required' }
    }
    return { path: e.instancePath, message: e.message ?? e.keyword }
  })
}
