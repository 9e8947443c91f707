import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js'
import egressCertRequestSchema from './egress-cert-request.schema.json' with { type: 'json' }
import externalServiceSchema from './external-service.schema.json' with { type: 'json' }
import meshSchema from './mesh.schema.json' with { type: 'json' }
import meshTrafficPermissionSchema from './mesh-traffic-permission.schema.json' with { type: 'json' }
import natsMessagesSchema from './nats-messages.schema.json' with { type: 'json' }
import { Kind } from './resources.js'
import { type ShapeProblem, schemaProblems } from './schema-problems.js'
import zoneEgressSchema from './zone-egress.schema.json' with { type: 'json' }
import zoneIngressSchema from './zone-ingress.schema.json' with { type: 'json' }

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

export { type ShapeProblem, schemaProblems } from './schema-problems.js'
/** The table envelope's shape check (ahead-of-time compiled: schemas/zone-table-shape.ts). */
export { validateZoneTableShape } from './zone-table-shape.js'
export type { ErrorObject as SchemaError }

const validateEgressCertRequest: ValidateFunction = ajv.compile(egressCertRequestSchema)

/** Checks an `EgressCertRequest` (schemas/certs.ts); every problem as `{path, message}`, empty = valid. Pure. */
export function validateEgressCertRequestShape(value: unknown): ShapeProblem[] {
  if (validateEgressCertRequest(value)) return []
  return schemaProblems(validateEgressCertRequest.errors)
}

ajv.addSchema(natsMessagesSchema)

/**
 * The compiled validator of one definition of schemas/nats-messages.schema.json (`heartbeat`, `rollout.applied`,
 * `reconcileReply`…), or undefined for an unknown name.
 */
export function natsMessageValidator(definition: string): ValidateFunction | undefined {
  if (!Object.hasOwn(natsMessagesSchema.$defs, definition)) return undefined
  return ajv.getSchema(`${natsMessagesSchema.$id}#/$defs/${definition}`)
}
