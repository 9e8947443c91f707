import type { CommitPublishedEvent } from '../schemas/events.js'
import type { PublishedZoneTable, TableSignature } from '../schemas/table.js'
import type { Violation } from '../schemas/violation.js'
import type { AppliedMtls } from './core/ca-change.js'
import type { ActiveMeshCa } from './core/cert-service.js'
import { ErrorKind, PublishConflict, type ReconcileError } from './core/errors.js'
import type { BuiltEvent } from './core/events.js'

/**
 * What the reconcile pass (reconciler/reconcile.ts) keeps from one pass to the next, what it reports, and the one
 * function that applies a failed step's error to that state. Imports no step, so the steps and the pass share
 * these types without a cycle.
 */

/** What a zone last received: its envelope and the KV revision for the next CAS write. */
export interface InventoryEntry {
  table: PublishedZoneTable
  kvRevision: number
}

/**
 * The table a zone's key holds now (its last value, read from the stream's leader): the fields the publish step
 * compares with what it is about to write, and the KV revision of that value. A large table's head carries the
 * same fields.
 */
export interface CurrentTable {
  generation: number
  revision: string
  digest: string
  signature?: TableSignature
  kvRevision: number
}

/** Zone → what it last received (read back from KV `zonegate-tables`). */
export type Inventory = Map<string, InventoryEntry>

export interface PassState {
  /** What each zone last received; undefined = read it from KV before diffing (start-up, takeover, conflict). */
  inventory?: Inventory
  /**
   * Last generation this reconciler wrote or removed per zone: a zone that comes back continues its generation,
   * and a lower generation found in KV (written by somebody else) does not pull the next one down.
   */
  lastGenerations: Map<string, number>
  /** Sha whose tables are all published (or that changed nothing). */
  lastAppliedSha?: string
  /** Sha that stalled: not retried until the branch moves. */
  stalledSha?: string
  stalledError?: ReconcileError
  /** Events built but not yet acknowledged by the stream (sent first by the next pass). */
  pendingEvents: BuiltEvent[]
  /** mTLS state of the last applied revision (the CA-change rule's reference); read from KV when undefined. */
  appliedMtls?: AppliedMtls
  /** The applied state was not written to KV yet. */
  appliedMtlsDirty?: boolean
  /** Signing CAs of the meshes with mTLS on in the last applied revision (the certificate service reads them). */
  meshCas?: Map<string, ActiveMeshCa>
  /** When the current pass started (the `p<ms>` publication part of its pre-publish commit events). */
  passStart: Date
}

export const initialPassState = (): PassState => ({
  lastGenerations: new Map(),
  pendingEvents: [],
  passStart: new Date(0),
})

/**
 * What a failed step's error does to the state, by its policy (core/errors.ts): a stalled error stalls `sha` (not
 * retried until the branch moves; its error is what `skipped` reports); a CAS conflict drops the inventory, so
 * the next pass reads it again before diffing. A transient error changes nothing else: the last good tables stay.
 */
export function applyError(state: PassState, error: ReconcileError, sha: string | undefined): void {
  if (error.kind === ErrorKind.Stalled && sha !== undefined) {
    state.stalledSha = sha
    state.stalledError = error
  }
  if (error instanceof PublishConflict) state.inventory = undefined
}

/**
 * After the NATS server lost its store (issue #16.1): nothing this process published is there any more. The
 * next pass must publish every zone again, so the inventory becomes empty and the applied sha unknown; each
 * zone's last generation is kept in `lastGenerations`, so the republished tables continue their generation
 * (an egress still serving generation N admits N + 1 without having to notice the recreated bucket).
 */
export function forgetPublished(state: PassState): void {
  rememberGenerations(state)
  state.inventory = new Map()
  state.lastAppliedSha = undefined
  state.stalledSha = undefined
  state.stalledError = undefined
}

/**
 * Folds each zone's generation in the inventory into `lastGenerations` (used only for a zone absent from KV),
 * before the inventory is dropped (lease takeover, lost store), so generations continue whatever happens in
 * between. Updates `state` in place.
 */
export function rememberGenerations(state: PassState): void {
  for (const [zone, e] of state.inventory ?? [])
    state.lastGenerations.set(zone, Math.max(e.table.generation, state.lastGenerations.get(zone) ?? 0))
}

/** What one pass did (reconciler/reconcile.ts lists when each result happens). */
export type PassReport =
  | {
      result: 'applied'
      revision: string
      sha: string
      zones: CommitPublishedEvent['zones']
      /** Milliseconds spent in each step (fetch, validate, ca, compile, diff, publish). */
      timings: Record<string, number>
    }
  | { result: 'unchanged'; revision: string; sha: string }
  | { result: 'skipped'; revision: string; sha: string; error: ReconcileError }
  | { result: 'invalid'; revision: string; sha: string; error: ReconcileError; violations: Violation[] }
  | { result: 'failed'; revision?: string; sha?: string; error: ReconcileError }
  | { result: 'superseded'; revision: string; sha: string; by: string }
