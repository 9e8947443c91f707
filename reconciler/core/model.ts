import type { ExternalService, Mesh, MeshTrafficPermission, ZoneEgress, ZoneIngress } from '../../schemas/resources.js'

/**
 * What the source hands the core: the files of one revision, keyed by path relative to the snapshot root
 * (posix separators). Nothing in the core knows whether it came from Git or a folder.
 * `revision` is `<branch>@sha1:<sha>` for Git, `path:<folder>` for a folder (schemas/revision.ts).
 */
export interface Snapshot {
  revision: string
  files: Map<string, Uint8Array | string>
}

/** 1-based line and column. */
export interface Position {
  line: number
  column: number
}

export interface SourceLocation extends Position {
  file: string
}

/**
 * One YAML document of a snapshot, before validation. `positions` maps every field's Kuma-style dotted path
 * (`networking.port`, `mtls.backends[0].name`, `tags["kuma.io/service"]`, `''` for the document) to the
 * position of its value; `keyPositions` to the position of its key (for "unknown field" warnings).
 */
export interface ParsedDocument {
  file: string
  /** 0-based index of the document in its file. */
  index: number
  location: SourceLocation
  value: unknown
  positions: Map<string, Position>
  keyPositions: Map<string, Position>
}

/** A validated resource with where it came from. */
export interface Located<T> {
  resource: T
  location: SourceLocation
  /** Field positions, as in ParsedDocument. */
  positions: Map<string, Position>
}

/** The valid resources of a snapshot, each list in file order. */
export interface Resources {
  meshes: Located<Mesh>[]
  zoneEgresses: Located<ZoneEgress>[]
  zoneIngresses: Located<ZoneIngress>[]
  externalServices: Located<ExternalService>[]
  /** Optional so code that builds Resources by hand keeps compiling; validate always sets it. */
  meshTrafficPermissions?: Located<MeshTrafficPermission>[]
  /**
   * The snapshot's data files (`*.pem`, `*.crt`, `*.cert`, `*.key`) that `file` data sources read; compile resolves
   * TLS and CA data from them. Absent when the snapshot has none.
   */
  files?: ReadonlyMap<string, Uint8Array | string>
}

export const emptyResources = (): Resources => ({
  meshes: [],
  zoneEgresses: [],
  zoneIngresses: [],
  externalServices: [],
  meshTrafficPermissions: [],
})
