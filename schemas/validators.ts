import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js'
import egressCertRequestSchema from './egress-cert-request.schema.json' with { type: 'json' }
import externalServiceSchema from './external-service.schema.json' with { type: 'json' }
import meshSchema from './mesh.schema.json' with { type: 'json' }
import meshTrafficPermissionSchema from './mesh-traffic-permission.schema.json' with { type: 'json' }
import { Kind } from './resources.js'
import zoneEgressSchema from './zone-egress.schema.json' with { type: 'json' }
import zoneIngressSchema from './zone-ingress.schema.json' with { type: 'json' }
import zoneTableSchema from './zone-table.schema.json' with { type: 'json' }

/**
 * The JSON Schemas of schemas/*.schema.json (draft 2020-12), compiled once at module load with `allErrors`
 * so a document reports every problem, not the first. Resource schemas check types and known fields only;
 * Kuma's own rules (with Kuma's messages) live in reconciler/core/validate/rules.ts.
 */
const ajv = new Ajv2020({ allErrors: true, strict: true })

export const validateMeshShape: ValidateFunction = ajv.compile(meshSchema)
export const validateZoneEgressShape: ValidateFunction = ajv.compile(zoneEgressSchema)
export const validateZoneIngressShape: ValidateFunction = ajv.compile(zoneIngressSchema)
export const validateExternalServiceShape: ValidateFunction = ajv.compile(externalServiceSchema)
export const validateMeshTrafficPermissionShape: ValidateFunction = ajv.compile(meshTrafficPermissionSchema)
const validateZoneTable: ValidateFunction = ajv.compile(zoneTableSchema)

/** The compiled shape validator of each resource kind. */
export const resourceShapeValidators: Readonly<Record<Kind, ValidateFunction>> = {
  [Kind.Mesh]: validateMeshShape,
  [Kind.ZoneEgress]: validateZoneEgressShape,
  [Kind.ZoneIngress]: validateZoneIngressShape,
  [Kind.ExternalService]: validateExternalServiceShape,
  [Kind.MeshTrafficPermission]: validateMeshTrafficPermissionShape,
}

/** The JSON Schema of each resource kind (read by the validator's Kuma-style decoding, validate/normalize.ts). */
export const resourceSchemas: Readonly<Record<Kind, object>> = {
  [Kind.Mesh]: meshSchema,
  [Kind.ZoneEgress]: zoneEgressSchema,
  [Kind.ZoneIngress]: zoneIngressSchema,
  [Kind.ExternalService]: externalServiceSchema,
  [Kind.MeshTrafficPermission]: meshTrafficPermissionSchema,
}

export type { ErrorObject as SchemaError }

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

/**
 * Checks a value against the table envelope schema (DESIGN.md §3). Returns every problem as
 * `{path (JSON pointer), message}`; an empty list means the shape is valid. Does not check the digest. Pure.
 */
export function validateZoneTableShape(value: unknown): ShapeProblem[] {
  if (validateZoneTable(value)) return []
  return schemaProblems(validateZoneTable.errors)
}

const validateEgressCertRequest: ValidateFunction = ajv.compile(egressCertRequestSchema)

/** Checks an `EgressCertRequest` (schemas/certs.ts); every problem as `{path, message}`, empty = valid. Pure. */
export function validateEgressCertRequestShape(value: unknown): ShapeProblem[] {
  if (validateEgressCertRequest(value)) return []
  return schemaProblems(validateEgressCertRequest.errors)
}
