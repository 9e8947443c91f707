import { createHash } from 'node:crypto'
import { canonicalJson } from '../../schemas/digest.js'
import type { TableEgress, TableMesh, TableRoute } from '../../schemas/table.js'
import { bytewise } from './compile-inputs.js'

/**
 * Assembling one zone's table from routes shared by every zone plus the zone's own, and hashing its digest
 * without re-serialising the shared part. Pure. Used by compile.ts.
 */

/** A route and `,` + its canonical JSON (the digest is hashed from these fragments). */
export interface Built {
  route: TableRoute
  commaJson: string
  /** Within one compile: where this route goes in the shared list (index of the first shared SNI ≥ its SNI). */
  pos?: number
}

/** A zone-independent route, tagged with its mesh plan so a zone can leave it out. */
export interface SharedBuilt extends Built {
  /** The mesh plan it belongs to (any object identifying the mesh). */
  plan: object
  service: string
}

/** What one mesh contributes to one zone: its own routes, and the shared services it replaces or drops. */
export interface ZonePart {
  specific: Built[]
  excluded: Set<string>
}

/**
 * The zone-independent routes of a compile, sorted by SNI, with their canonical JSON laid end to end in one
 * buffer. A zone's table is this list minus the services the zone replaces, plus the zone's own routes merged in
 * by position; its digest hashes the buffer in contiguous runs, so a 10,000-route zone costs a few hundred
 * hash updates instead of 10,000 and no re-sort.
 */
export class SharedRoutes {
  private readonly list: SharedBuilt[]
  private readonly sni: string[]
  private readonly offsets: number[]
  private readonly blob: Buffer
  private readonly index = new Map<object, Map<string, number>>()

  constructor(items: SharedBuilt[]) {
    this.list = items.sort((a, b) => bytewise(a.route.sni, b.route.sni))
    this.sni = this.list.map((b) => b.route.sni)
    this.offsets = [0]
    for (const b of this.list) this.offsets.push((this.offsets.at(-1) as number) + Buffer.byteLength(b.commaJson))
    this.blob = Buffer.from(this.list.map((b) => b.commaJson).join(''), 'utf8')
    this.list.forEach((b, i) => {
      const m = this.index.get(b.plan) ?? new Map<string, number>()
      this.index.set(b.plan, m)
      m.set(b.service, i)
    })
  }

  /** Index of the first shared SNI ≥ `sni` (binary search; cached on the Built, which may recur across zones). */
  private position(b: Built): number {
    if (b.pos !== undefined) return b.pos
    let lo = 0
    let hi = this.sni.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.sni[mid] as string) < b.route.sni) lo = mid + 1
      else hi = mid
    }
    b.pos = lo
    return lo
  }

  /**
   * One zone's routes in SNI order, its `meshes` (from `meshesOf(routes)`) and its digest: equal to
   * tableDigest({zone, egresses, routes, meshes}), byte for byte the canonical JSON (tested).
   */
  assemble(
    zone: string,
    egresses: TableEgress[],
    parts: [object, ZonePart][],
    meshesOf: (routes: TableRoute[]) => TableMesh[] | undefined = () => undefined,
  ): { routes: TableRoute[]; digest: string; meshes?: TableMesh[] } {
    const n = this.list.length
    const skip = new Uint8Array(n)
    for (const [plan, part] of parts)
      for (const service of part.excluded) {
        const i = this.index.get(plan)?.get(service)
        if (i !== undefined) skip[i] = 1
      }
    const own = parts
      .flatMap(([, part]) => part.specific)
      .map((b) => ({ b, pos: this.position(b) }))
      .sort((x, y) => x.pos - y.pos || bytewise(x.b.route.sni, y.b.route.sni))

    // Route fragments are hashed after the loop: `meshes` (canonically before `routes`) depends on the routes.
    const chunks: (Buffer | string)[] = []
    let first = true
    const emit = (part: Buffer | string) => {
      chunks.push(first ? part.slice(1) : part) // the first route has no leading comma
      first = false
    }
    const routes: TableRoute[] = []
    let run = -1 // start of the current run of shared routes not yet hashed
    const flush = (end: number) => {
      if (run >= 0 && end > run) emit(this.blob.subarray(this.offsets[run], this.offsets[end]))
      run = -1
    }
    let j = 0
    for (let i = 0; i <= n; i++) {
      while (j < own.length && (own[j] as { pos: number }).pos === i) {
        flush(i)
        const b = (own[j++] as { b: Built }).b
        routes.push(b.route)
        emit(b.commaJson)
      }
      if (i === n) break
      if (skip[i]) {
        flush(i)
        continue
      }
      if (run < 0) run = i
      routes.push((this.list[i] as SharedBuilt).route)
    }
    flush(n)
    const meshes = meshesOf(routes)
    const hash = createHash('sha256').update(`{"egresses":${canonicalJson(egresses)},`, 'utf8')
    if (meshes) hash.update(`"meshes":${canonicalJson(meshes)},`, 'utf8')
    hash.update('"routes":[', 'utf8')
    for (const c of chunks) hash.update(c)
    hash.update(`],"zone":${JSON.stringify(zone)}}`, 'utf8')
    const digest = `sha256:${hash.digest('hex')}`
    return meshes ? { routes, digest, meshes } : { routes, digest }
  }
}
