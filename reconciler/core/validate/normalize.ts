import type { Kind } from '../../../schemas/resources.js'
import { resourceSchemas } from '../../../schemas/validators.js'
import type { ParsedDocument } from '../model.js'
import { joinPath } from './locate.js'

/**
 * Reads a document's value the way Kuma's decoder does (`pkg/util/proto/proto.go` FromYAML: YAML → JSON, then
 * protojson into the resource's proto message), guided by the resource's JSON Schema:
 * - `null` means "not set": the field is dropped (except inside `conf`, a google.protobuf.Struct, where null is a value);
 * - integer fields accept a number written as a JSON string (`port: "10002"`), as protojson does;
 * - floating fields (`sampling`) accept a number written as a string;
 * - enum fields accept the enum's number (`meshServices.mode: 3` is `Exclusive`; the schemas list enums in proto order);
 * - the proto name of a field whose .proto name differs from its JSON name (`ca_cert` for `caCert`, `server_name`,
 *   …: `PROTO_NAMES`) is read as that field; both spellings at once is a violation (protojson: duplicate field).
 * YAML 1.1 booleans are handled by the parser (parse.ts). Positions of renamed fields are moved to the JSON name,
 * so violations still point at the user's line. Mutates the value in place; returns the document to validate (the
 * same object unless a field was renamed) and violations. Pure.
 */

/**
 * Proto names that differ from the JSON names, from Kuma's .proto files (`api/mesh/v1alpha1/externalservice.proto`:
 * `ca_cert`, `client_cert`, `client_key`, `server_name`). Every other field of these kinds is declared in
 * camelCase in Kuma's protos (`advertisedAddress`, `zoneEgress`, `enabledBackend` …), so its proto name *is* its
 * JSON name and a snake_case spelling is an unknown field that Kuma ignores (warned, with the right name).
 */
export const PROTO_NAMES: Readonly<Record<string, string>> = {
  ca_cert: 'caCert',
  client_cert: 'clientCert',
  client_key: 'clientKey',
  server_name: 'serverName',
}

export interface NormalizeProblem {
  rule: string
  path: string
  message: string
}

interface Schema {
  type?: string | string[]
  properties?: Record<string, Schema>
  additionalProperties?: Schema | boolean
  items?: Schema
  enum?: unknown[]
  $ref?: string
  $defs?: Record<string, Schema>
}

const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?$/

export function normalizeDocument(
  doc: ParsedDocument,
  kind: Kind,
): { doc: ParsedDocument; problems: NormalizeProblem[] } {
  const root = resourceSchemas[kind] as Schema
  const problems: NormalizeProblem[] = []
  const renames: [string, string][] = []
  walkObject(doc.value, root, root, '', undefined, problems, renames)
  if (renames.length === 0) return { doc, problems }
  const positions = new Map(doc.positions)
  const keyPositions = new Map(doc.keyPositions)
  for (const [from, to] of renames) {
    movePrefix(positions, from, to)
    movePrefix(keyPositions, from, to)
  }
  return { doc: { ...doc, value: doc.value, positions, keyPositions, location: doc.location }, problems }
}

function resolve(schema: Schema | undefined, root: Schema): Schema | undefined {
  if (schema?.$ref?.startsWith('#/$defs/')) return root.$defs?.[schema.$ref.slice('#/$defs/'.length)]
  return schema
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

function walkObject(
  value: unknown,
  schema: Schema | undefined,
  root: Schema,
  path: string,
  field: string | undefined,
  problems: NormalizeProblem[],
  renames: [string, string][],
): void {
  const s = resolve(schema, root)
  if (!s || !isObject(value) || !s.properties) return
  for (const key of Object.keys(value)) {
    let name = key
    if (!Object.hasOwn(s.properties, key) && Object.hasOwn(PROTO_NAMES, key)) {
      const json = PROTO_NAMES[key] as string
      if (Object.hasOwn(s.properties, json)) {
        if (Object.hasOwn(value, json)) {
          const at = joinPath(path, key, field)
          problems.push({
            rule: 'yaml.duplicate-field',
            path: at,
            message: `duplicate field: "${key}" is the proto name of "${json}", which is also set`,
          })
          continue
        }
        value[json] = value[key]
        delete value[key]
        renames.push([joinPath(path, key, field), joinPath(path, json, field)])
        name = json
      }
    }
    const child = value[name]
    if (child === null) {
      delete value[name] // protojson: null is "not set"
      continue
    }
    const sub = resolve(s.properties[name], root)
    if (!sub) continue
    value[name] = coerce(child, sub)
    const childPath = joinPath(path, name, field)
    if (Array.isArray(child)) {
      const items = resolve(sub.items, root)
      child.forEach((item, i) => {
        if (items && !isObject(item)) child[i] = coerce(item, items)
        else walkObject(item, items, root, `${childPath}[${i}]`, name, problems, renames)
      })
    } else walkObject(child, sub, root, childPath, name, problems, renames)
  }
}

/** protojson's readings of a scalar for an integer, number or enum field; anything else is left to the schema. */
function coerce(v: unknown, s: Schema): unknown {
  const type = s.type
  if (typeof v === 'string' && (type === 'integer' || type === 'number') && JSON_NUMBER.test(v)) {
    const n = Number(v)
    if (type === 'number' || Number.isInteger(n)) return n
  }
  if (typeof v === 'number' && Array.isArray(s.enum) && Number.isInteger(v) && v >= 0 && v < s.enum.length)
    return s.enum[v]
  return v
}

function movePrefix<T>(map: Map<string, T>, from: string, to: string): void {
  for (const [k, v] of [...map]) {
    if (k === from || k.startsWith(`${from}.`) || k.startsWith(`${from}[`)) {
      map.delete(k)
      map.set(to + k.slice(from.length), v)
    }
  }
}
