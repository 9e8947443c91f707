import type { RolloutAppliedEvent, RolloutRejectedEvent } from '../../schemas/events.js'
import { encodeToken, eventMsgId, rolloutInstanceSubject } from '../../schemas/subjects.js'

/**
 * The egress's own rollout events (DESIGN.md §3), built the way the reconciler's core/events.ts builds them
 * (egress/ must not import reconciler/): subject `zonegate.events.rollout.<zone>.<applied|rejected>.<egress>.
 * <instance>`, `Nats-Msg-Id` `<sha>:<zone>:<egress>/<instance>:<phase>` (tokens encoded), so the stream
 * stores a retried publish once and the reconciler's tracker sees the same ids whoever built them.
 */
export interface BuiltInstanceEvent<E> {
  subject: string
  msgId: string
  payload: E
}

const SHA = /@sha1:([0-9a-f]{40}|[0-9a-f]{64})$/

/** The sha of a revision (`<branch>@sha1:<hex>` → hex), else the revision as one encoded token. Pure. */
export function revisionSha(revision: string): string {
  const m = SHA.exec(revision)
  return m ? (m[1] as string) : encodeToken(revision)
}

const instancePart = (egress: string, instance: string) => `${encodeToken(egress)}/${encodeToken(instance)}`

type Input<E> = Omit<E, 'type' | 'time'> & { time: Date }

/** `…rollout.<zone>.applied.<egress>.<instance>` with generation, digest and swap time. Pure. */
export function appliedEvent(b: Input<RolloutAppliedEvent>): BuiltInstanceEvent<RolloutAppliedEvent> {
  return {
    subject: rolloutInstanceSubject(b.zone, 'applied', b.egress, b.instance),
    msgId: eventMsgId(revisionSha(b.revision), b.zone, instancePart(b.egress, b.instance), 'applied'),
    payload: {
      type: 'rollout.applied',
      time: b.time.toISOString(),
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

/** `…rollout.<zone>.rejected.<egress>.<instance>` with the reason (generation/digest when known). Pure. */
export function rejectedEvent(b: Input<RolloutRejectedEvent>): BuiltInstanceEvent<RolloutRejectedEvent> {
  const payload: RolloutRejectedEvent = {
    type: 'rollout.rejected',
    time: b.time.toISOString(),
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
    msgId: eventMsgId(revisionSha(b.revision), b.zone, instancePart(b.egress, b.instance), 'rejected'),
    payload,
  }
}
