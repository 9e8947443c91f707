import type { RolloutAppliedEvent, RolloutRejectedEvent, ZonegateEvent } from './events.js'
import { shaOfRevision } from './revision.js'
import { encodeToken, eventMsgId, generationPart, rolloutInstanceSubject } from './subjects.js'

/**
 * Event-builder pieces shared by both sides: the reconciler (reconciler/core/events.ts re-exports these and adds
 * the commit and zone events) and the egress, which publishes its own applied/rejected events and may not import
 * reconciler/. One implementation, so subjects and `Nats-Msg-Id`s agree whoever builds them.
 * Each builder returns the subject, the `Nats-Msg-Id` and the payload, ready for `publishEvent`. Times are passed
 * in (no clock here). The msg id is
 * `<sha>:<zone or ->:<instance or ->:<phase>`, so a retried publish of the same event within the stream's
 * 2-minute duplicate window is stored once.
 */
export interface BuiltEvent<E extends ZonegateEvent = ZonegateEvent> {
  subject: string
  msgId: string
  payload: E
}

/** Input every builder takes: the revision (schemas/revision.ts) and the event time. */
export interface EventBase {
  revision: string
  /** A Date or an RFC 3339 string. */
  time: Date | string
}

/**
 * The commit sha of a revision (schemas/revision.ts); a revision without one (a folder snapshot, `path:<folder>`)
 * is encoded into one subject token with `encodeToken`. Pure.
 */
export function revisionSha(revision: string): string {
  return shaOfRevision(revision) ?? encodeToken(revision)
}

/** RFC 3339 time of a Date (a string passes through). Pure. */
export const iso = (t: Date | string) => (typeof t === 'string' ? t : t.toISOString())

/** Instance part of a msg id: `<egress>/<instance>` (encoded so it has no `:`). */
export const instanceMsgPart = (egress: string, instance: string) => `${encodeToken(egress)}/${encodeToken(instance)}`

/** Input of the rollout builders: the payload without type/time/revision, plus revision and time. */
export type RolloutInput<E> = EventBase & Omit<E, 'type' | 'time' | 'revision'>

/**
 * `zonegate.events.rollout.<zone>.applied.<egress>.<instance>`; msg id instance part `<egress>/<instance>`.
 * Pure.
 */
export function rolloutAppliedEvent(b: RolloutInput<RolloutAppliedEvent>): BuiltEvent<RolloutAppliedEvent> {
  const sha = revisionSha(b.revision)
  return {
    subject: rolloutInstanceSubject(b.zone, 'applied', b.egress, b.instance),
    msgId: eventMsgId(sha, b.zone, instanceMsgPart(b.egress, b.instance), 'applied', generationPart(b.generation)),
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
    msgId: eventMsgId(sha, b.zone, instanceMsgPart(b.egress, b.instance), 'rejected', generationPart(b.generation)),
    payload,
  }
}
