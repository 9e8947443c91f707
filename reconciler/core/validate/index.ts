import { DEFAULT_ZONE, KINDS, Kind } from '../../../schemas/resources.js'
import { compareViolations, type Violation } from '../../../schemas/violation.js'
import { isDataFile } from '../data-source.js'
import { emptyResources, type Located, type ParsedDocument, type Resources, type Snapshot } from '../model.js'
import { parseSnapshot } from '../parse/index.js'
import { crossRules, type TypedDocument, zoneOf } from './cross.js'
import { locate } from './locate.js'
import { normalizeDocument } from './normalize.js'
import { invalidTypeMessage } from './resource-type.js'
import { resourceRules } from './rules.js'
import { validateShape } from './schema.js'

export interface ValidationResult {
  /** True when there is no violation (warnings do not count). */
  valid: boolean
  /** The resources without violations of their own, in file order (zone proxies get their zone filled in). */
  resources: Resources
  /** Sorted with compareViolations. */
  violations: Violation[]
  /** Sorted with compareViolations. */
  warnings: Violation[]
}

export interface ValidateOptions {
  /** The zone of a ZoneEgress/ZoneIngress without `zone` (default `default`). */
  defaultZone?: string
  /** Data files of the snapshot that `file` data sources may read (validateSnapshot passes them). */
  files?: ReadonlyMap<string, Uint8Array | string>
}

/**
 * Parses and validates a snapshot: parse limits and YAML errors, resource type, JSON Schema (types, unknown
 * fields as warnings), Kuma's rules per resource (meta, Mesh, ZoneEgress, ZoneIngress, ExternalService with
 * Kuma's paths and messages) and the cross-resource rules. Collects everything; never stops at the first
 * problem and never throws. Pure.
 */
export function validateSnapshot(snapshot: Snapshot, opts: ValidateOptions = {}): ValidationResult {
  const parsed = parseSnapshot(snapshot)
  const result = validateDocuments(parsed.documents, { ...opts, files: opts.files ?? dataFilesOf(snapshot) })
  if (parsed.violations.length === 0) return result
  const violations = [...parsed.violations, ...result.violations].sort(compareViolations)
  return { ...result, valid: false, violations }
}

/** Validates already parsed documents (see validateSnapshot). Pure. */
export function validateDocuments(documents: readonly ParsedDocument[], opts: ValidateOptions = {}): ValidationResult {
  const defaultZone = opts.defaultZone ?? DEFAULT_ZONE
  const violations: Violation[] = []
  const warnings: Violation[] = []
  const typed: TypedDocument[] = []
  const bad = new Set<TypedDocument>()
  for (const docIn of documents) {
    const value = docIn.value as Record<string, unknown>
    const name = typeof value.name === 'string' ? value.name : ''
    const type = value.type
    if (typeof type !== 'string' || !(KINDS as readonly string[]).includes(type)) {
      const at = locate(docIn, 'type')
      const kind = typeof type === 'string' ? type : ''
      const message = invalidTypeMessage(value)
      violations.push({ file: docIn.file, ...at, kind, name, path: '', rule: 'meta.invalid-type', message })
      continue
    }
    const kind = type as Kind
    const normalized = normalizeDocument(docIn, kind)
    const doc = normalized.doc
    if (normalized.problems.length > 0) {
      for (const p of normalized.problems)
        violations.push({ file: doc.file, ...locate(doc, p.path, { key: true }), kind, name, ...p })
      continue
    }
    const shape = validateShape(doc, kind, name)
    warnings.push(...shape.warnings)
    if (shape.violations.length > 0) {
      violations.push(...shape.violations)
      continue
    }
    const item: TypedDocument = { kind, name, doc, value }
    if (kind === Kind.ZoneEgress || kind === Kind.ZoneIngress) item.zone = zoneOf(value as never, defaultZone)
    typed.push(item)
    const emit = (rule: string, path: string, message: string, at?: string) => {
      violations.push({ file: doc.file, ...locate(doc, at ?? path), kind, name, path, rule, message })
      bad.add(item)
    }
    try {
      resourceRules(kind, value, emit, { files: opts.files })
    } catch (err) {
      // A rule that throws is a bug; the document is still reported (never an exception out of validation).
      emit(
        'validate.internal',
        '',
        `internal error while validating: ${err instanceof Error ? err.message : String(err)}`,
      )
    }
  }
  const duplicates = crossRules(typed, (item, rule, path, message, o) => {
    const at = locate(item.doc, o?.at ?? path)
    const v = { file: item.doc.file, ...at, kind: item.kind, name: item.name, path, rule, message }
    if (o?.warning) warnings.push(v)
    else {
      violations.push(v)
      bad.add(item)
    }
  })
  const resources = emptyResources()
  for (const item of typed) {
    if (bad.has(item) || duplicates.has(item)) continue
    addResource(resources, item)
  }
  if (opts.files && opts.files.size > 0) resources.files = opts.files
  violations.sort(compareViolations)
  warnings.sort(compareViolations)
  return { valid: violations.length === 0, resources, violations, warnings }
}

/** The data files of a snapshot (`file` data sources read only these). Pure. */
function dataFilesOf(snapshot: Snapshot): Map<string, Uint8Array | string> | undefined {
  let out: Map<string, Uint8Array | string> | undefined
  for (const [path, content] of snapshot.files)
    if (isDataFile(path)) {
      out ??= new Map()
      out.set(path, content)
    }
  return out
}

function addResource(resources: Resources, item: TypedDocument): void {
  // positions are read through (not copied): documents of the fast parser build them on first use
  const located = <T>(resource: T): Located<T> => ({
    resource,
    location: item.doc.location,
    get positions() {
      return item.doc.positions
    },
  })
  const v = item.value as never
  if (item.kind === Kind.Mesh) resources.meshes.push(located(v))
  else if (item.kind === Kind.ExternalService) resources.externalServices.push(located(v))
  else if (item.kind === Kind.MeshTrafficPermission) {
    resources.meshTrafficPermissions ??= []
    resources.meshTrafficPermissions.push(located(v))
  } else if (item.kind === Kind.ZoneEgress)
    resources.zoneEgresses.push(located({ ...(v as object), zone: item.zone } as never))
  // A ZoneIngress keeps its `zone` as written: without one it is never remote (compile resolves its zone).
  else resources.zoneIngresses.push(located(v))
}
