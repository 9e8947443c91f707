import type { ZoneTable } from '../../schemas/table.js'
import { RejectedTable } from '../core/admission.js'
import { CompactZoneTable, routeCount } from '../core/compact-table.js'
import { staleReason, type TableCheck, TableRejection, validateTableEnvelope } from '../core/routing-table.js'

/**
 * Context of the egress lifecycle machine and the pure functions that update it. Kept apart from the machine
 * file so each update is unit-tested on its own (STYLE.md §6).
 */

export type TableSource = 'file' | 'nats'

export interface EgressInput {
  /** `static`: one table file (`--static`), reloaded on SIGHUP; `nats`: the zone's KV key (+ `--state-dir`). */
  source: 'static' | 'nats'
  zone?: string
  name?: string
  instance: string
  /**
   * Public nkeys whose signatures this egress trusts (`--trusted-key`): when non-empty, only a table signed by
   * one of them is admitted, and a deleted zone key does not lower the generation it requires.
   */
  trustedKeys?: readonly string[]
}

/** Why a candidate table was not applied. */
export type RejectionReason = TableRejection | 'load-failed' | 'apply-failed'

export interface TableRejected {
  reason: RejectionReason
  problems: string[]
  source: TableSource
  generation?: number
  digest?: string
  /** The table's `revision`, when it had one (the rollout event's msg id is built from it). */
  revision?: string
}

export interface TableSwapped {
  generation?: number
  revision?: string
  digest: string
  routes: number
  ms: number
  source?: TableSource
}

export interface EgressContext extends EgressInput {
  /** The table being served (undefined until the first one is applied). */
  table?: ZoneTable
  /** The candidate being admitted or applied. */
  candidate?: Admission
  /** A table received while another was being applied; admitted next. */
  queued?: { table: unknown; source: TableSource }
  lastRejection?: TableRejected
  lastSwap?: TableSwapped
  swaps: number
  rejections: number
  /** Set when the machine stopped because of an error (first table invalid, listen failed…). */
  error?: string
  /** Whether the drain in progress ends the process (SIGTERM, /quitquitquit) or only the listeners. */
  exitAfterDrain: boolean
  /** NATS connection lost (or not yet made): the last good table keeps serving (`degraded`). */
  busLost: boolean
  /**
   * NATS mode: the next NATS table is admitted whatever its generation, because the served one is only a
   * cache (the `--state-dir` file) or the zone's key was deleted / the bucket recreated (generations restart).
   */
  resync: boolean
}

export type Admission = { ok: true; table: ZoneTable; source: TableSource } | ({ ok: false } & TableRejected)

/** The context a fresh machine starts with. Pure. */
export function initialContext(input: EgressInput): EgressContext {
  return { ...input, swaps: 0, rejections: 0, exitAfterDrain: true, busLost: input.source === 'nats', resync: false }
}

/** The table a candidate must be newer than: none while resyncing (see `EgressContext.resync`). Pure. */
export function admissionBase(context: EgressContext): ZoneTable | undefined {
  return context.resync ? undefined : context.table
}

/**
 * Decides whether a received value may replace the served table: it must be a valid envelope (shape, digest,
 * zone when the egress has one, signature by a trusted key when `trustedKeys` is non-empty) and newer than
 * `current` (see `staleReason`: an older or equal generation — a replay — is `stale-generation`). The value is
 * either untrusted JSON (checked here), or what the admission worker made of it (egress/core/admission.ts): a
 * `CompactZoneTable` that passed the same checks there (with the same trusted keys), or a `RejectedTable`. Pure;
 * never throws.
 */
export function admitTable(
  current: ZoneTable | undefined,
  value: unknown,
  source: TableSource,
  zone?: string,
  trustedKeys?: readonly string[],
): Admission {
  // Tables from the admission worker were checked there (schema, digest, signature, zone, SNIs); here only that it
  // used this egress's zone and trusted keys (a wiring mistake fails closed)
  if (value instanceof RejectedTable) return { ok: false, ...value.rejection, source }
  const check: TableCheck =
    value instanceof CompactZoneTable
      ? compactCheck(value, zone, trustedKeys)
      : validateTableEnvelope(value, zone, trustedKeys)
  if (!check.ok) {
    const v = value as Partial<ZoneTable> | null
    return {
      ok: false,
      reason: check.reason,
      problems: check.problems,
      source,
      ...(typeof v?.generation === 'number' ? { generation: v.generation } : {}),
      ...(typeof v?.digest === 'string' ? { digest: v.digest } : {}),
      ...(typeof v?.revision === 'string' ? { revision: v.revision } : {}),
    }
  }
  const stale = staleReason(current, check.table)
  if (stale !== null) {
    const problems = [
      stale === 'unchanged'
        ? `digest ${check.table.digest} is already served`
        : `generation ${check.table.generation ?? '(none)'} is not newer than ${current?.generation ?? '(none)'}`,
    ]
    return {
      ok: false,
      reason: stale,
      problems,
      source,
      ...(check.table.generation === undefined ? {} : { generation: check.table.generation }),
      digest: check.table.digest,
      ...(check.table.revision === undefined ? {} : { revision: check.table.revision }),
    }
  }
  return { ok: true, table: check.table, source }
}

/**
 * Whether the zone's table going away lets the next table in whatever its generation (`resync`). Without
 * trusted keys: always (the reconciler continues the generation of a zone that comes back, but a recreated
 * bucket restarts at 1). With trusted keys only when the bucket itself was recreated: a client that can write
 * the tables bucket could otherwise delete the key and then replay an older signed table. Pure.
 */
export function resyncOnRemoval(context: EgressContext, event: { generationsRestart?: boolean }): boolean {
  if ((context.trustedKeys?.length ?? 0) === 0) return true
  return event.generationsRestart === true || context.resync
}

/** What is left to check of a table admitted by the worker: the zone, and the keys its signature was checked with. */
function compactCheck(table: CompactZoneTable, zone?: string, trustedKeys?: readonly string[]): TableCheck {
  if (zone !== undefined && table.zone !== zone)
    return { ok: false, reason: TableRejection.WrongZone, problems: [`table is for zone ${table.zone}, not ${zone}`] }
  const want = [...(trustedKeys ?? [])].sort()
  const got = [...table.checkedWith].sort()
  if (want.length !== got.length || want.some((k, i) => k !== got[i]))
    return {
      ok: false,
      reason: TableRejection.Invalid,
      problems: ['admitted with other trusted keys than this egress has (--trusted-key): refused'],
    }
  return { ok: true, table }
}

/** Records a rejected candidate; the served table is unchanged. Pure. */
export function withRejection(context: EgressContext, rejected: TableRejected): Partial<EgressContext> {
  return { lastRejection: rejected, rejections: context.rejections + 1, candidate: undefined }
}

/**
 * Records an applied table. In NATS mode a table from the state file leaves `resync` set (the next NATS
 * table replaces it whatever its generation); a NATS table clears it. Pure.
 */
export function withSwap(
  context: EgressContext,
  table: ZoneTable,
  ms: number,
  source: TableSource = 'file',
): Partial<EgressContext> {
  return {
    table,
    candidate: undefined,
    swaps: context.swaps + 1,
    resync: context.source === 'nats' && source === 'file',
    lastSwap: {
      ...(table.generation === undefined ? {} : { generation: table.generation }),
      ...(table.revision === undefined ? {} : { revision: table.revision }),
      digest: table.digest,
      routes: routeCount(table),
      ms,
      source,
    },
  }
}

/** A rejection for a table the source could not even read (unreadable file, bad JSON). Pure. */
export function loadFailure(error: unknown, source: TableSource): TableRejected {
  return { reason: 'load-failed', problems: [error instanceof Error ? error.message : String(error)], source }
}

/** The rejection carried by a refused admission. Pure. */
export function rejectionOf(a: Admission | undefined): TableRejected {
  if (a === undefined || a.ok) return { reason: 'apply-failed', problems: ['no candidate'], source: 'file' }
  const { ok: _ok, ...rest } = a
  return rest
}
