/**
 * The table envelope of DESIGN.md §3: the value of KV `zonegate-tables` key `<zone>.table`, the output of
 * `zonegate compile`, and what an egress loads with `--static FILE`.
 */

export const TABLE_API_VERSION = 'zonegate.io/v1'
export const TABLE_KIND = 'ZoneEgressTable'

export interface TableEgress {
  name: string
  /** Absent when the ZoneEgress resource has no `networking.address`. */
  address?: string
  port: number
  /** Absent when `networking.admin.port` is unset or 0 (Kuma's default 9901 applies). */
  adminPort?: number
}

export interface TableUpstream {
  address: string
  port: number
  weight: number
  /** The remote zone, for cross-zone upstreams. */
  zone?: string
}

export interface RouteTls {
  enabled: boolean
  serverName?: string
}

export const RouteKind = { External: 'external', CrossZone: 'cross-zone' } as const
export type RouteKind = (typeof RouteKind)[keyof typeof RouteKind]
export const RouteMode = { Passthrough: 'passthrough', TerminateMtls: 'terminate-mtls' } as const
export type RouteMode = (typeof RouteMode)[keyof typeof RouteMode]

export interface TableRoute {
  sni: string
  mesh: string
  service: string
  kind: RouteKind
  mode: RouteMode
  upstreams: TableUpstream[]
  tls?: RouteTls
}

export interface TableSignature {
  alg: 'ed25519'
  key: string
  value: string
}

export interface ZoneTable {
  apiVersion: typeof TABLE_API_VERSION
  kind: typeof TABLE_KIND
  zone: string
  /** Increases by one per published change of the zone; absent in `zonegate compile` output. */
  generation?: number
  /** `<branch>@sha1:<40 hex>`, or `path:<folder>` for a snapshot read from a folder. */
  revision?: string
  /** `sha256:<hex>` of the canonical JSON of `{zone, egresses, routes}`. */
  digest: string
  egresses: TableEgress[]
  routes: TableRoute[]
  signature?: TableSignature
}

/** A table as published: generation and revision are set. */
export type PublishedZoneTable = ZoneTable & { generation: number; revision: string }
