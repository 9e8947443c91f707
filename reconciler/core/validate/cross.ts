import {
  type ExternalService,
  Kind,
  type Mesh,
  SERVICE_TAG,
  ZONE_TAG,
  type ZoneEgress,
  type ZoneIngress,
} from '../../../schemas/resources.js'
import type { ParsedDocument } from '../model.js'
import { isIP, splitHostPort } from './net.js'
import { MESH_RE } from './rules.js'

/** A document whose kind is known and whose types passed the schema. */
export interface TypedDocument {
  kind: Kind
  name: string
  doc: ParsedDocument
  value: Record<string, unknown>
  /** For ZoneEgress/ZoneIngress: `zone`, or the default zone when empty. */
  zone?: string
}

/** Reports a cross-resource finding on `item` (a violation, or a warning when `warning` is true). */
export type CrossEmit = (
  item: TypedDocument,
  rule: string,
  path: string,
  message: string,
  opts?: { at?: string; warning?: boolean },
) => void

/**
 * Cross-resource rules (docs/kuma-model.md §3, docs/validation.md): duplicate declarative keys (Mesh by name,
 * ZoneEgress/ZoneIngress by zone+name, ExternalService by mesh+name; the later document is reported), an
 * ExternalService's mesh must exist; warnings for a zoneEgress mesh while a zone with ingresses has no
 * ZoneEgress, and for an ExternalService pinned to a zone with no ZoneEgress. Linear in the number of
 * documents (plus meshes × zones). Returns the documents reported as duplicates. Pure.
 */
export function crossRules(items: readonly TypedDocument[], emit: CrossEmit): Set<TypedDocument> {
  const duplicates = new Set<TypedDocument>()
  const seen = new Map<string, TypedDocument>()
  const meshes = new Set<string>()
  const egressZones = new Set<string>()
  const ingressZones = new Set<string>()
  for (const item of items) {
    const key = keyOf(item)
    const first = seen.get(key)
    if (first) {
      const where = `${first.doc.location.file}:${first.doc.location.line}:${first.doc.location.column}`
      emit(item, 'resource.duplicate', 'name', `${describe(item)} is already defined at ${where}`)
      duplicates.add(item)
    } else seen.set(key, item)
    if (item.kind === Kind.Mesh) meshes.add(item.name)
    if (item.kind === Kind.ZoneEgress) egressZones.add(item.zone!)
    if (item.kind === Kind.ZoneIngress) ingressZones.add(item.zone!)
  }
  mixedEndpointRule(items, emit)
  const lonelyZones = [...ingressZones].filter((z) => !egressZones.has(z)).sort()
  for (const item of items) {
    if (item.kind === Kind.MeshTrafficPermission) {
      const mesh = (item.value as { mesh?: string }).mesh
      if (mesh && MESH_RE.test(mesh) && !meshes.has(mesh))
        emit(item, 'policy.mesh-not-found', '', `mesh of name ${mesh} is not found`, { at: 'mesh' })
      permissionWarnings(item, emit)
    } else if (item.kind === Kind.ExternalService) {
      const es = item.value as unknown as ExternalService
      if (es.mesh && es.mesh.length <= 253 && MESH_RE.test(es.mesh) && !meshes.has(es.mesh))
        emit(item, 'external-service.mesh-not-found', '', `mesh of name ${es.mesh} is not found`, { at: 'mesh' })
      const pinned = es.tags?.[ZONE_TAG]
      if (pinned && !egressZones.has(pinned))
        emit(
          item,
          'external-service.zone-without-egress',
          `tags[${JSON.stringify(ZONE_TAG)}]`,
          `zone "${pinned}" has no ZoneEgress: the service is pinned there and no egress can reach it`,
          { warning: true },
        )
    } else if (item.kind === Kind.Mesh && (item.value as unknown as Mesh).routing?.zoneEgress === true) {
      for (const zone of lonelyZones)
        emit(
          item,
          'mesh.zone-without-egress',
          'routing.zoneEgress',
          `zone "${zone}" has ZoneIngresses but no ZoneEgress: cross-zone and external traffic of this mesh from there has no egress`,
          { warning: true },
        )
    }
  }
  return duplicates
}

function keyOf(item: TypedDocument): string {
  switch (item.kind) {
    case Kind.Mesh:
      return JSON.stringify([item.kind, item.name])
    case Kind.ExternalService:
    case Kind.MeshTrafficPermission:
      return JSON.stringify([item.kind, (item.value as unknown as ExternalService).mesh ?? '', item.name])
    default:
      return JSON.stringify([item.kind, item.zone, item.name])
  }
}

function describe(item: TypedDocument): string {
  if (item.kind === Kind.Mesh) return `Mesh "${item.name}"`
  if (item.kind === Kind.ExternalService || item.kind === Kind.MeshTrafficPermission)
    return `${item.kind} "${item.name}" in mesh "${(item.value as unknown as ExternalService).mesh ?? ''}"`
  return `${item.kind} "${item.name}" in zone "${item.zone}"`
}

/** The zone of a zone proxy: its `zone` field, or `defaultZone` when empty. */
export function zoneOf(value: ZoneEgress | ZoneIngress, defaultZone: string): string {
  return typeof value.zone === 'string' && value.zone !== '' ? value.zone : defaultZone
}

/**
 * What the zone egress cannot honour exactly (docs/permissions.md): callers are known by service only, so tags
 * other than `kuma.io/service` in a `from` targetRef are read fail-closed; a `Dataplane` target selects no
 * ExternalService.
 */
function permissionWarnings(item: TypedDocument, emit: CrossEmit): void {
  const spec = (item.value as { spec?: { targetRef?: { kind?: unknown }; from?: unknown } }).spec
  if (spec?.targetRef?.kind === 'Dataplane')
    emit(
      item,
      'mtp.no-effect-at-egress',
      'spec.targetRef.kind',
      'selects data planes, not ExternalServices: it has no effect at the zone egress',
      { warning: true },
    )
  const from = Array.isArray(spec?.from) ? spec.from : []
  from.forEach((f: { targetRef?: { tags?: unknown }; default?: { action?: unknown } }, i: number) => {
    const tags = f?.targetRef?.tags
    if (!tags || typeof tags !== 'object') return
    const extra = Object.keys(tags).filter((k) => k !== SERVICE_TAG)
    if (extra.length === 0) return
    const deny = f?.default?.action === 'Deny'
    emit(
      item,
      'mtp.caller-tags',
      `spec.from[${i}].targetRef.tags`,
      `the zone egress knows callers by service only (spiffe://<mesh>/<service>): ${extra.map((k) => `"${k}"`).join(', ')} cannot be checked, so this ${deny ? 'Deny applies to every caller it would match without them' : 'entry allows no caller there'}`,
      { warning: true },
    )
  })
}

/**
 * ExternalServices of one mesh with the same `kuma.io/service` are one Envoy cluster; Kuma builds it STRICT_DNS
 * when an endpoint is a host name and STATIC otherwise, and cannot build it when both kinds are mixed (the whole
 * egress configuration is then refused by Envoy). zonegate refuses such a group as a violation on every member,
 * naming every file involved. Pure.
 */
function mixedEndpointRule(items: readonly TypedDocument[], emit: CrossEmit): void {
  const groups = new Map<string, { item: TypedDocument; ip: boolean }[]>()
  for (const item of items) {
    if (item.kind !== Kind.ExternalService) continue
    const es = item.value as unknown as ExternalService
    const service = es.tags?.[SERVICE_TAG]
    const hp = typeof es.networking?.address === 'string' ? splitHostPort(es.networking.address) : undefined
    if (service === undefined || !hp || hp.host === '') continue
    const key = JSON.stringify([es.mesh ?? '', service])
    const list = groups.get(key) ?? []
    list.push({ item, ip: isIP(hp.host) })
    groups.set(key, list)
  }
  for (const list of groups.values()) {
    if (!list.some((e) => e.ip) || list.every((e) => e.ip)) continue
    const where = list.map((e) => `${e.item.doc.file}:${e.item.doc.location.line} (${e.ip ? 'IP' : 'host name'})`)
    const first = list[0] as { item: TypedDocument }
    const service = (first.item.value as unknown as ExternalService).tags[SERVICE_TAG]
    for (const { item } of list)
      emit(
        item,
        'external-service.mixed-endpoints',
        'networking.address',
        `ExternalServices of service "${service}" mix IP addresses and host names, which Kuma cannot put in one cluster: ${where.join(', ')}`,
      )
  }
}
