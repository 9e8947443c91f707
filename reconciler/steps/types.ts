import type { Logger } from 'pino'
import type { CommitPublishedEvent, ZonegateEvent } from '../../schemas/events.js'
import type { TableSigner } from '../../schemas/signing.js'
import type { PublishedZoneTable, ZoneTable } from '../../schemas/table.js'
import type { Violation, Warning } from '../../schemas/violation.js'
import type { AppliedMtls } from '../core/ca-change.js'
import type { ActiveMeshCa } from '../core/cert-service.js'
import type { CompileOptions } from '../core/compile.js'
import type { ReconcileError } from '../core/errors.js'
import type { BuiltEvent } from '../core/events.js'
import type { MeshCaSpec } from '../core/mesh-ca.js'
import type { Resources, Snapshot } from '../core/model.js'
import type { CaMaterial } from '../core/pki/index.js'
import type { CurrentTable, Inventory, PassReport, PassState } from '../pass-state.js'
import type { PassHooks } from '../triggers.js'
import type { ZoneChange } from './plan.js'

/**
 * Shared types of the pass's steps (reconciler/reconcile.ts). Each step is one function over the pass context
 * returning `{ value }` or `{ error }`; the pass stops at the first error.
 */
export type Step<T> = { value: T } | { error: ReconcileError }

/**
 * What the steps of one pass share (Flux's reconcilers share the object and the artifact the same way): the
 * effects, the state kept across passes, and what the steps before produced, filled in order.
 */
export interface PassContext {
  readonly deps: PassDeps
  readonly state: PassState
  readonly hooks: PassHooks
  /** `deps.log` until the tip is resolved, then its child `{ component: 'reconcile', revision }`. */
  log: Logger
  /** The resolved branch tip and its revision (schemas/revision.ts): set by fetch. */
  sha?: string
  revision?: string
  /** Set by fetch when the tip is a new sha; read by validate. */
  snapshot?: Snapshot
  resources?: Resources
  caPlan?: CaPlan
  tables?: ZoneTable[]
  plan?: ZoneChange[]
  /** The zones publish wrote or removed, sorted. */
  zones?: CommitPublishedEvent['zones']
}

/** What the mesh CA step prepared (reconciler/steps/ca-step.ts), applied once the revision is published. */
export interface CaPlan {
  builtinCaCerts: Map<string, string[]>
  active: Map<string, ActiveMeshCa>
  applied: AppliedMtls
}

/**
 * One step of the pass: `{ value: undefined }` goes on to the next step, `{ value: report }` ends the pass with
 * that report (unchanged tip, stalled sha, superseded), `{ error }` stops it (the pass applies the error's
 * policy and reports it). `timed` steps get an entry in the applied report's `timings`.
 */
export interface PassStep {
  readonly name: string
  readonly timed: boolean
  run(ctx: PassContext): Promise<Step<PassReport | undefined>>
}

/** The Git (or any) source, as the pass sees it. */
export interface PassSource {
  resolve(): Promise<string>
  fetch(sha: string): Promise<Snapshot>
}

export interface ValidationOutcome {
  valid: boolean
  resources: Resources
  violations: Violation[]
  warnings: Warning[]
}

/** NATS effects of the pass (the transport engineer's functions, bound to a bus). */
export interface PassBus {
  readInventory(): Promise<Inventory>
  /**
   * What the zone's key holds now, read from the stream leader (undefined: no table, or deleted). The publish
   * step reads it before each write: a table whose digest (and signing key) is already there is not written
   * again under a new generation, whatever the inventory said (issue #12).
   */
  currentTable(zone: string): Promise<CurrentTable | undefined>
  /**
   * CAS write; `expectedKvRevision` 0 = the key must not exist. Resolves to the new KV revision. `json`: the
   * envelope's JSON as published (`tableEnvelopeJson(table)`), when the diff step already made it.
   */
  publishTable(table: PublishedZoneTable, expectedKvRevision: number, json?: string): Promise<number>
  removeTable(zone: string, expectedKvRevision: number): Promise<void>
  emit(event: BuiltEvent<ZonegateEvent>): Promise<unknown>
  /**
   * The largest table (envelope JSON bytes) the publisher writes; undefined = not checked. Tables over the
   * server's max_payload go to the object store (decision 008), so this is the body limit, not max_payload.
   */
  maxTableBytes?(): number | undefined
}

/** Mesh CA effects of the pass (KV `zonegate-ca`). */
export interface PassCa {
  /** The mTLS state of the last applied revision (undefined: none recorded). */
  readApplied(): Promise<AppliedMtls | undefined>
  writeApplied(value: AppliedMtls): Promise<void>
  /** The builtin CA of a mesh backend, created once and kept. */
  ensureBuiltin(spec: MeshCaSpec): Promise<CaMaterial>
}

export interface PassDeps {
  source: PassSource
  validate(snapshot: Snapshot): ValidationOutcome
  /** One unpublished table per zone (no generation/revision). */
  compile(resources: Resources, opts?: Pick<CompileOptions, 'builtinCaCerts'>): ZoneTable[]
  /** Mesh CAs; absent (tests of other steps) = the CA-change rule runs on in-memory state, builtin CAs are unknown. */
  ca?: PassCa
  bus: PassBus
  /**
   * The reconciler's signing key (`--signing-key`): every planned table is signed with it, and a zone whose
   * table in KV is unsigned or signed by another key is republished (signing turned on, key rotation).
   */
  signer?: TableSigner
  /** Publish a zone whose table would lose every route (default: refuse the commit). */
  allowEmpty: boolean
  branch: string
  now(): Date
  log: Logger
}
