import {
  type MeshTrafficPermission,
  SERVICE_TAG,
  type Tags,
  type TargetRef,
  TrafficAction,
} from '../../schemas/resources.js'

/**
 * Who may use an external route: MeshTrafficPermissions evaluated Kuma's way for one destination service
 * (docs/permissions.md). Pure.
 *
 * 1. Policies of the mesh whose `spec.targetRef` selects the destination (absent or `Mesh`: all; `MeshService`:
 *    name = the service; `MeshSubset`: its tags are all among the destination's tags; `MeshServiceSubset`: both;
 *    `Dataplane`: never an ExternalService) are ordered by that kind (Mesh < MeshSubset < MeshService <
 *    MeshServiceSubset), ties by name descending, so the more specific, then the lexicographically smaller name,
 *    comes later and wins.
 * 2. Their `from[]` entries, in that order, are stably sorted by the kind of their own targetRef (same ranking).
 * 3. A caller service gets the action of the last entry that matches it; no entry → denied (Kuma 2.x: no
 *    permission, no access). `AllowWithShadowDeny` allows.
 * The egress knows a caller only by its service (SAN `spiffe://<mesh>/<service>`), so an entry with tags other than
 * `kuma.io/service` is read fail-closed: an Allow of that kind matches nobody, a Deny matches as if the extra tags
 * were absent.
 */

export interface RouteAccess {
  /** Allowed caller services, sorted; `["*"]` = every caller not in `deny`; `[]` = nobody. */
  allow: string[]
  /** Only with `allow: ["*"]`: services refused although the rest of the mesh is allowed (sorted). */
  deny: string[]
}

const RANK: Record<string, number> = { Mesh: 0, MeshSubset: 1, MeshService: 2, MeshServiceSubset: 3 }
const rank = (ref: TargetRef | undefined) => RANK[ref?.kind ?? 'Mesh'] ?? -1

const ALLOWING = new Set<string>([TrafficAction.Allow, TrafficAction.AllowWithShadowDeny])

/** Does a top-level targetRef select the destination `service` with (common) tags `tags`? */
function selectsDestination(ref: TargetRef | undefined, service: string, tags: Tags): boolean {
  const kind = ref?.kind ?? 'Mesh'
  const tagsMatch = () => Object.entries(ref?.tags ?? {}).every(([k, v]) => tags[k] === v)
  if (kind === 'Mesh') return true
  if (kind === 'MeshService') return ref?.name === service
  if (kind === 'MeshSubset') return tagsMatch()
  if (kind === 'MeshServiceSubset') return ref?.name === service && tagsMatch()
  return false
}

/** A from-entry reduced to the callers it names: `undefined` service = every caller. */
interface Entry {
  rank: number
  service?: string
  /** Matches nobody (an Allow the egress cannot evaluate). */
  none: boolean
  allow: boolean
}

function toEntry(ref: TargetRef | undefined, action: string | undefined): Entry | undefined {
  const kind = ref?.kind
  if (!kind || RANK[kind] === undefined || !action) return undefined
  const allow = ALLOWING.has(action)
  const tags = ref?.tags ?? {}
  const extra = Object.keys(tags).some((k) => k !== SERVICE_TAG)
  let service: string | undefined
  if (kind === 'MeshService' || kind === 'MeshServiceSubset') service = ref?.name
  else if (kind === 'MeshSubset') service = tags[SERVICE_TAG]
  return { rank: RANK[kind] as number, ...(service === undefined ? {} : { service }), none: extra && allow, allow }
}

/**
 * The callers of destination `service` (with the tags its ExternalServices have in common) in `mesh` that
 * `permissions` allow. Pure; linear in the number of policies of the mesh.
 */
export function computeRouteAccess(
  mesh: string,
  service: string,
  tags: Tags,
  permissions: readonly MeshTrafficPermission[],
): RouteAccess {
  const selected = permissions
    .filter((p) => p.mesh === mesh && selectsDestination(p.spec?.targetRef, service, tags))
    .sort(
      (a, b) => rank(a.spec?.targetRef) - rank(b.spec?.targetRef) || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0),
    )
  const entries: Entry[] = []
  for (const p of selected)
    for (const f of p.spec?.from ?? []) {
      const e = toEntry(f.targetRef, f.default?.action)
      if (e) entries.push(e)
    }
  entries.sort((a, b) => a.rank - b.rank) // stable: policy order kept within a rank
  // Every caller not named by any entry behaves alike ("others"); named callers are decided one by one.
  const named = new Set<string>()
  for (const e of entries) if (e.service !== undefined) named.add(e.service)
  const decide = (caller: string | undefined): boolean => {
    let allowed = false
    for (const e of entries) {
      if (e.none) continue
      if (e.service !== undefined && e.service !== caller) continue
      allowed = e.allow
    }
    return allowed
  }
  const others = decide(undefined)
  const allow: string[] = []
  const deny: string[] = []
  for (const s of [...named].sort()) {
    const ok = decide(s)
    if (ok && !others) allow.push(s)
    if (!ok && others) deny.push(s)
  }
  return others ? { allow: ['*'], deny } : { allow, deny: [] }
}
