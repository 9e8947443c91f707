import type { ZoneRolloutStatus } from '../../schemas/status.js'
import { unknownAfterMs } from '../../schemas/subjects.js'

/**
 * The data of rollout tracking (reconciler/core/rollout.ts holds the transitions): the book of live instances,
 * per-zone rollouts and undecided commits, the outputs a transition produces, and the read-only views of a
 * book (liveness, next wakeup, status). Pure.
 */

export const RolloutState = { Progressing: 'progressing', Converged: 'converged', Timeout: 'timeout' } as const
export type RolloutState = (typeof RolloutState)[keyof typeof RolloutState]

export const StallReason = { RolloutTimeout: 'RolloutTimeout', RolloutRejected: 'RolloutRejected' } as const
export type StallReason = (typeof StallReason)[keyof typeof StallReason]

/** Heartbeat states of an instance that is going away: it no longer counts as live. */
const LEAVING_STATES = new Set(['draining', 'stopped'])

export interface InstanceSeen {
  zone: string
  egress: string
  instance: string
  lastSeenMs: number
  /** Its heartbeat period (from the heartbeat; default 10 s): older than two periods = not waited for. */
  periodMs?: number
  state?: string
  /** Digest of the last heartbeat. */
  digest?: string
  /** Digest of the last `rollout.applied` event. */
  appliedDigest?: string
}

export interface ZoneRollout {
  zone: string
  revision: string
  sha: string
  generation: number
  digest: string
  state: RolloutState
  startedMs: number
  deadlineMs: number
  endedMs?: number
  /** `<egress>/<instance>` that reported the digest, in report order. */
  reported: string[]
  /** `<egress>/<instance>` → reason, for rejections of this table. */
  rejected: Record<string, string>
  /** Instances missing at the timeout. */
  missing: string[]
  /** After the end: live instances without the digest, since when, and whether they were reported stale. */
  late: Record<string, { sinceMs: number; stale: boolean }>
}

export interface CommitRollout {
  sha: string
  revision: string
  zones: string[]
  /** Msg id part of its events: `g<highest generation it published>` (core/events.ts `commitPublication`). */
  publication: string
}

export interface RolloutBook {
  timeoutMs: number
  liveTtlMs: number
  /** Key `<zone>/<egress>/<instance>`. */
  instances: Record<string, InstanceSeen>
  zones: Record<string, ZoneRollout>
  /** Commits not decided yet, by sha. */
  commits: Record<string, CommitRollout>
}

export interface ZoneRef {
  zone: string
  revision: string
  generation: number
  digest: string
}
export type RolloutOutput =
  | (ZoneRef & { type: 'zone.converged'; instances: string[]; ms: number })
  | (ZoneRef & { type: 'zone.timeout'; missing: string[]; rejected: Record<string, string> })
  | (ZoneRef & { type: 'zone.superseded'; by: string })
  | { type: 'commit.converged'; revision: string; sha: string; publication: string; zones: string[] }
  | {
      type: 'commit.stalled'
      revision: string
      sha: string
      publication: string
      reason: StallReason
      message: string
    }
  | { type: 'commit.superseded'; revision: string; sha: string; publication: string; by: string }
  | (ZoneRef & { type: 'instance.converged'; instance: string })
  | (ZoneRef & { type: 'instance.stale'; instance: string; serving?: string })
  | (ZoneRef & { type: 'instance.rejected'; instance: string; reason: string })

export interface RolloutStep {
  book: RolloutBook
  outputs: RolloutOutput[]
}

/** `<egress>/<instance>`, the name of an instance in events, logs and status. Pure. */
export const instanceName = (egress: string, instance: string) => `${egress}/${instance}`
/** Bytewise order of names. Pure. */
export const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** An empty book. Pure. */
export function initialRolloutBook(o: { timeoutMs: number; liveTtlMs: number }): RolloutBook {
  return { timeoutMs: o.timeoutMs, liveTtlMs: o.liveTtlMs, instances: {}, zones: {}, commits: {} }
}

/**
 * How long after its last heartbeat an instance still counts: the liveness TTL (the bucket's, 30 s), but at
 * most two of its heartbeat periods — an instance that missed two heartbeats is `unknown` (killed, hung,
 * cut off) and a rollout does not wait for it. Pure.
 */
export const liveForMs = (b: RolloutBook, i: InstanceSeen) => Math.min(b.liveTtlMs, unknownAfterMs(i.periodMs))

/** Live: heartbeat younger than `liveForMs` and not draining/stopped. Pure. */
export const isLive = (b: RolloutBook, i: InstanceSeen, now: number) =>
  now - i.lastSeenMs <= liveForMs(b, i) && !LEAVING_STATES.has(i.state ?? '')

/** The live instances of a zone. Pure. */
export function liveInstances(b: RolloutBook, zone: string, now: number): InstanceSeen[] {
  return Object.values(b.instances).filter((i) => i.zone === zone && isLive(b, i, now))
}

/** The live instances of a zone as sorted `<egress>/<instance>` names. Pure. */
export function liveNames(b: RolloutBook, zone: string, now: number): string[] {
  return liveInstances(b, zone, now)
    .map((i) => instanceName(i.egress, i.instance))
    .sort(byName)
}

/** The next time (ms) at which `tickRollouts` can change something; undefined when nothing waits. Pure. */
export function nextWakeupMs(book: RolloutBook): number | undefined {
  const times: number[] = Object.values(book.instances).map((i) => i.lastSeenMs + liveForMs(book, i) + 1)
  for (const z of Object.values(book.zones)) {
    if (z.state === RolloutState.Progressing) times.push(z.deadlineMs)
    for (const l of Object.values(z.late)) if (!l.stale) times.push(l.sinceMs + book.timeoutMs)
  }
  return times.length === 0 ? undefined : Math.min(...times)
}

/** Per zone, the rollout part of the status (schemas/status.ts). Pure. */
export function zoneRolloutStatuses(book: RolloutBook, now: number): Record<string, ZoneRolloutStatus> {
  const out: Record<string, ZoneRolloutStatus> = {}
  for (const z of Object.values(book.zones)) {
    const live = liveNames(book, z.zone, now)
    const s: ZoneRolloutStatus = {
      state: z.state,
      revision: z.revision,
      generation: z.generation,
      digest: z.digest,
      startedAt: new Date(z.startedMs).toISOString(),
      current: live.filter((n) => z.reported.includes(n)),
      missing: live.filter((n) => !z.reported.includes(n)),
      stale: Object.entries(z.late)
        .filter(([, l]) => l.stale)
        .map(([n]) => n)
        .sort(byName),
      rejected: Object.entries(z.rejected)
        .map(([instance, reason]) => ({ instance, reason }))
        .sort((x, y) => byName(x.instance, y.instance)),
    }
    if (z.endedMs !== undefined) s.endedAt = new Date(z.endedMs).toISOString()
    out[z.zone] = s
  }
  return out
}
