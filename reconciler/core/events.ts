import type {
  CommitConvergedEvent,
  CommitFetchedEvent,
  CommitInvalidEvent,
  CommitPublishedEvent,
  CommitStalledEvent,
  CommitSupersededEvent,
  RolloutAppliedEvent,
  RolloutConvergedEvent,
  RolloutPublishedEvent,
  RolloutRejectedEvent,
  RolloutTimeoutEvent,
  ZonegateEvent,
} from '../../schemas/events.js'
import {
  commitSubject,
  encodeToken,
  eventMsgId,
  rolloutInstanceSubject,
  rolloutSubject,
} from '../../schemas/subjects.js'

/**
 * Pure builders of the events of DESIGN.md §3: each returns the subject, the `Nats-Msg-Id` and the payload,
 * ready for `publishEvent`. Times are passed in (no clock here). The msg id is
 * `<sha>:<zone or ->:<instance or ->:<phase>`, so a retried publish of the same event within the stream's
 * 2-minute duplicate window is stored once.
 */
export interface BuiltEvent<E extends ZonegateEvent = ZonegateEvent> {
  subject: string
  msgId: string
  payload: E
}

/** Input every builder takes: the revision (`<branch>@sha1:<sha>`) and the event time. */
export interface EventBase {
  revision: string
  /** A Date or an RFC 3339 string. */
  time: Date | string
}

const SHA = /@sha1:([0-9a-f]{40}|[0-9a-f]{64})$/

/**
 * The commit sha of a revision: the hex after `@sha1:`; a revision without one (a folder snapshot,
 * `path:<folder>`) is encoded into one subject token with `encodeToken`. Pure.
 */
export function revisionSha(revision: string): string {
  const m = SHA.exec(revision)
  return m ? (m[1] as string) : encodeToken(revision)
}

const iso = (t: Date | string) => (typeof t === 'string' ? t : t.toISOString())

/** Instance part of a msg id: `<egress>/<instance>` (encoded so it has no `:`). */
export const instanceMsgPart = (egress: string, instance: string) => `${encodeToken(egress)}/${encodeToken(instance)}`

function commit<E extends ZonegateEvent>(b: EventBase, phase: string, rest: object): BuiltEvent<E> {
  const sha = revisionSha(b.revision)
  return {
    subject: commitSubject(sha, phase),
    msgId: eventMsgId(sha, undefined, undefined, phase),
    payload: { type: `commit.${phase}`, time: iso(b.time), revision: b.revision, sha, ...rest } as unknown as E,
  }
}

/** `zonegate.events.commit.<sha>.fetched`. Pure. */
export const commitFetchedEvent = (b: EventBase) => commit<CommitFetchedEvent>(b, 'fetched', {})

/** `zonegate.events.commit.<sha>.invalid` with every violation. Pure. */
export const commitInvalidEvent = (b: EventBase & Pick<CommitInvalidEvent, 'violations'>) =>
  commit<CommitInvalidEvent>(b, 'invalid', { violations: b.violations })

/** `zonegate.events.commit.<sha>.published` with the zones written (generation, digest, change). Pure. */
export const commitPublishedEvent = (b: EventBase & Pick<CommitPublishedEvent, 'zones'>) =>
  commit<CommitPublishedEvent>(b, 'published', { zones: b.zones })

/** `zonegate.events.commit.<sha>.superseded`, `by` = the revision that replaced it. Pure. */
export const commitSupersededEvent = (b: EventBase & Pick<CommitSupersededEvent, 'by'>) =>
  commit<CommitSupersededEvent>(b, 'superseded', { by: b.by })

/** `zonegate.events.commit.<sha>.converged`: every zone of the commit converged. Pure. */
export const commitConvergedEvent = (b: EventBase & Pick<CommitConvergedEvent, 'zones'>) =>
  commit<CommitConvergedEvent>(b, 'converged', { zones: b.zones })

/** `zonegate.events.commit.<sha>.stalled` with a reason and message. Pure. */
export const commitStalledEvent = (b: EventBase & Pick<CommitStalledEvent, 'reason' | 'message'>) =>
  commit<CommitStalledEvent>(b, 'stalled', { reason: b.reason, message: b.message })

function rollout<E extends ZonegateEvent>(b: EventBase & { zone: string }, phase: string, rest: object): BuiltEvent<E> {
  const sha = revisionSha(b.revision)
  return {
    subject: rolloutSubject(b.zone, phase),
    msgId: eventMsgId(sha, b.zone, undefined, phase),
    payload: {
      type: `rollout.${phase}`,
      time: iso(b.time),
      revision: b.revision,
      zone: b.zone,
      ...rest,
    } as unknown as E,
  }
}

type RolloutInput<E> = EventBase & Omit<E, 'type' | 'time' | 'revision'>

/** `zonegate.events.rollout.<zone>.published`. Pure. */
export const rolloutPublishedEvent = (b: RolloutInput<RolloutPublishedEvent>) =>
  rollout<RolloutPublishedEvent>(b, 'published', { generation: b.generation, digest: b.digest })

/** `zonegate.events.rollout.<zone>.converged`: every live instance serves the digest. Pure. */
export const rolloutConvergedEvent = (b: RolloutInput<RolloutConvergedEvent>) =>
  rollout<RolloutConvergedEvent>(b, 'converged', {
    generation: b.generation,
    digest: b.digest,
    instances: b.instances,
    ms: b.ms,
  })

/** `zonegate.events.rollout.<zone>.timeout`, naming the missing instances. Pure. */
export const rolloutTimeoutEvent = (b: RolloutInput<RolloutTimeoutEvent>) =>
  rollout<RolloutTimeoutEvent>(b, 'timeout', { generation: b.generation, digest: b.digest, missing: b.missing })

/**
 * `zonegate.events.rollout.<zone>.applied.<egress>.<instance>`; msg id instance part `<egress>/<instance>`.
 * Pure.
 */
export function rolloutAppliedEvent(b: RolloutInput<RolloutAppliedEvent>): BuiltEvent<RolloutAppliedEvent> {
  const sha = revisionSha(b.revision)
  return {
    subject: rolloutInstanceSubject(b.zone, 'applied', b.egress, b.instance),
    msgId: eventMsgId(sha, b.zone, instanceMsgPart(b.egress, b.instance), 'applied'),
    payload: {
      type: 'rollout.applied',
      time: iso(b.time),
      revision: b.revision,
      zone: b.zone,
      egress: b.egress,
      instance: b.instance,
      generation: b.generation,
      digest: b.digest,
      swapMs: b.swapMs,
    },
  }
}

/** `zonegate.events.rollout.<zone>.rejected.<egress>.<instance>` with the reason. Pure. */
export function rolloutRejectedEvent(b: RolloutInput<RolloutRejectedEvent>): BuiltEvent<RolloutRejectedEvent> {
  const sha = revisionSha(b.revision)
  const payload: RolloutRejectedEvent = {
    type: 'rollout.rejected',
    time: iso(b.time),
    revision: b.revision,
    zone: b.zone,
    egress: b.egress,
    instance: b.instance,
    reason: b.reason,
  }
  if (b.generation !== undefined) payload.generation = b.generation
  if (b.digest !== undefined) payload.digest = b.digest
  return {
    subject: rolloutInstanceSubject(b.zone, 'rejected', b.egress, b.instance),
    msgId: eventMsgId(sha, b.zone, instanceMsgPart(b.egress, b.instance), 'rejected'),
    payload,
  }
}
