/**
 * The table envelope of docs/design.md §3: the value of KV `zonegate-tables` key `<zone>.table`, the output of
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
  /**
   * Kuma's locality priority (0 when absent): with `routing.localityAwareLoadBalancing`, remote endpoints whose
   * service has a `kuma.io/zone` tag get 1. The egress sends only to the lowest priority with an upstream left.
   */
  priority?: number
  /**
   * TLS origination towards this upstream (external routes only): absent or `enabled: false` means plain TCP
   * after the egress has terminated the caller's mesh mTLS. PEM data is resolved at compile time.
   */
  tls?: UpstreamTls
}

/** Per-upstream TLS origination, from the ExternalService's `networking.tls` (Kuma's field names). */
export interface UpstreamTls {
  enabled: boolean
  /** SNI sent to the external service: `tls.serverName`, else the host when it is a DNS name. */
  serverName?: string
  /** PEM bundle the server is verified against; no system-CA fallback. */
  caCert?: string
  /** PEM client certificate, only together with `clientKey`. */
  clientCert?: string
  /** PEM private key of the client certificate. Secret: redacted in `/config_dump` and logs. */
  clientKey?: string
  allowRenegotiation?: boolean
  skipHostnameVerification?: boolean
}

/**
 * Route-level TLS of the first envelope version; superseded by `TableUpstream.tls`. The compiler no longer emits it
 * (docs/decisions/007-upstream-tls-and-table-version.md); the schema still accepts it.
 */
export interface RouteTls {
  enabled: boolean
  serverName?: string
}

/** A mesh whose external routes this zone's egress terminates: the CA certificates callers chain to. */
export interface TableMesh {
  name: string
  /** PEM certificates of the mesh's enabled CA backend (public part only, never a key). */
  caCerts: string[]
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
  /** Route-level TLS of the first envelope version; superseded by `upstreams[].tls`. */
  tls?: RouteTls
  /**
   * External routes: the caller services (SPIFFE `spiffe://<mesh>/<service>`) MeshTrafficPermissions allow;
   * `["*"]` everyone in the mesh, `[]` nobody (Kuma's default without a permission).
   */
  allow?: string[]
  /**
   * External routes, only together with `allow: ["*"]`: caller services refused although the rest of the mesh is
   * allowed (e.g. Allow Mesh + Deny MeshService `bad`). A caller is admitted when it is not in `deny` and `allow`
   * holds `"*"` or its service. Absent = nobody is carved out. See docs/permissions.md.
   */
  deny?: string[]
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
  /** `<branch>@sha1:<40 hex>` (`@sha256:<64 hex>` in a SHA-256 repository), or `path:<folder>` for a snapshot
   * read from a folder (schemas/revision.ts). */
  revision?: string
  /** `sha256:<hex>` of the canonical JSON of `{zone, egresses, routes}`. */
  digest: string
  egresses: TableEgress[]
  routes: TableRoute[]
  /** Meshes with terminate-mtls routes in this table and their CA certificates (sorted by name). */
  meshes?: TableMesh[]
  signature?: TableSignature
}

/** A table as published: generation and revision are set. */
export type PublishedZoneTable = ZoneTable & { generation: number; revision: string }
