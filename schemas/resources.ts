/**
 * Types of the four Kuma Universal resources zonegate reads (docs/kuma-model.md §2).
 * Legacy kinds keep their spec fields inline at top level, next to `type` and `name`.
 * These types describe a document *after* schema validation; unknown fields may still be present.
 */

export const Kind = {
  Mesh: 'Mesh',
  ZoneEgress: 'ZoneEgress',
  ZoneIngress: 'ZoneIngress',
  ExternalService: 'ExternalService',
  MeshTrafficPermission: 'MeshTrafficPermission',
} as const
export type Kind = (typeof Kind)[keyof typeof Kind]
export const KINDS: readonly Kind[] = [
  Kind.Mesh,
  Kind.ZoneEgress,
  Kind.ZoneIngress,
  Kind.ExternalService,
  Kind.MeshTrafficPermission,
]

export type Tags = Record<string, string>

export interface DataSource {
  secret?: string
  file?: string
  inline?: string
  inlineString?: string
}

export interface MtlsBackend {
  name: string
  type: string
  mode?: 'STRICT' | 'PERMISSIVE'
  dpCert?: { rotation?: { expiration?: string }; requestTimeout?: string }
  rootChain?: { requestTimeout?: string }
  conf?: Record<string, unknown>
}

export interface LoggingBackend {
  name?: string
  type?: string
  format?: string
  conf?: Record<string, unknown>
}

export interface TracingBackend {
  name?: string
  type?: string
  sampling?: number
  conf?: Record<string, unknown>
}

export interface MetricsBackend {
  name?: string
  type?: string
  conf?: Record<string, unknown>
}

export interface Mesh {
  type: 'Mesh'
  name: string
  labels?: Record<string, string>
  mtls?: { enabledBackend?: string; backends?: MtlsBackend[]; skipValidation?: boolean }
  routing?: {
    zoneEgress?: boolean
    localityAwareLoadBalancing?: boolean
    defaultForbidMeshExternalServiceAccess?: boolean
  }
  networking?: { outbound?: { passthrough?: boolean } }
  logging?: { defaultBackend?: string; backends?: LoggingBackend[] }
  tracing?: { defaultBackend?: string; backends?: TracingBackend[] }
  metrics?: { enabledBackend?: string; backends?: MetricsBackend[] }
  constraints?: { dataplaneProxy?: { requirements?: { tags?: Tags }[]; restrictions?: { tags?: Tags }[] } }
  skipCreatingInitialPolicies?: string[]
  meshServices?: { mode?: 'Disabled' | 'Everywhere' | 'ReachableBackends' | 'Exclusive' }
}

export interface ZoneEgress {
  type: 'ZoneEgress'
  name: string
  labels?: Record<string, string>
  /** Missing = the reconciler's default zone (`default`). */
  zone?: string
  networking: { address?: string; port: number; admin?: { port?: number } }
}

export interface AvailableService {
  tags: Tags
  instances?: number
  mesh?: string
  externalService?: boolean
}

export interface ZoneIngress {
  type: 'ZoneIngress'
  name: string
  labels?: Record<string, string>
  zone?: string
  networking: {
    address?: string
    port: number
    advertisedAddress?: string
    advertisedPort?: number
    admin?: { port?: number }
  }
  availableServices?: AvailableService[]
}

export interface ExternalServiceTls {
  enabled?: boolean
  caCert?: DataSource
  clientCert?: DataSource
  clientKey?: DataSource
  serverName?: string
  allowRenegotiation?: boolean
  skipHostnameVerification?: boolean
}

export interface ExternalService {
  type: 'ExternalService'
  name: string
  mesh: string
  labels?: Record<string, string>
  tags: Tags
  networking: { address: string; tls?: ExternalServiceTls; disableHostDNSEntry?: boolean }
}

/** A policy `targetRef` (Kuma's common_api.TargetRef; the kinds MeshTrafficPermission accepts). */
export interface TargetRef {
  kind?: string
  name?: string
  namespace?: string
  sectionName?: string
  mesh?: string
  tags?: Tags
  labels?: Record<string, string>
  proxyTypes?: string[]
}

export const TrafficAction = { Allow: 'Allow', Deny: 'Deny', AllowWithShadowDeny: 'AllowWithShadowDeny' } as const
export type TrafficAction = (typeof TrafficAction)[keyof typeof TrafficAction]

/** MeshTrafficPermission (Kuma 2.x `from[]` form); mesh-scoped, body under `spec`. */
export interface MeshTrafficPermission {
  type: 'MeshTrafficPermission'
  name: string
  mesh: string
  labels?: Record<string, string>
  spec?: {
    /** What the policy applies to (the destination); absent = the whole mesh. */
    targetRef?: TargetRef
    from?: { targetRef?: TargetRef; default?: { action?: TrafficAction } }[]
    /** Kuma 2.12+ `rules` (SPIFFE ID matches): refused by validation, never compiled. */
    rules?: unknown[]
  }
}

export type Resource = Mesh | ZoneEgress | ZoneIngress | ExternalService | MeshTrafficPermission

/** The zone a ZoneEgress/ZoneIngress belongs to when its `zone` field is empty. */
export const DEFAULT_ZONE = 'default'

/** The routing identity tag of Kuma. */
export const SERVICE_TAG = 'kuma.io/service'
export const ZONE_TAG = 'kuma.io/zone'
export const PROTOCOL_TAG = 'kuma.io/protocol'
