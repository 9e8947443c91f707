import type { RolloutAppliedEvent, RolloutRejectedEvent } from '../../schemas/events.js'
import {
  type BuiltEvent,
  type RolloutInput,
  rolloutAppliedEvent,
  rolloutRejectedEvent,
} from '../../schemas/instance-events.js'

/**
 * The egress's own rollout events (docs/design.md §3): `zonegate.events.rollout.<zone>.<applied|rejected>.<egress>.
 * <instance>`, `Nats-Msg-Id` `<sha>:<zone>:<egress>/<instance>:<phase>`. Built by the same shared builders as the
 * reconciler's (schemas/instance-events.ts), so the reconciler's tracker sees the same subjects and ids.
 */
export type BuiltInstanceEvent<E extends RolloutAppliedEvent | RolloutRejectedEvent> = BuiltEvent<E>

export { revisionSha } from '../../schemas/instance-events.js'

/** `…rollout.<zone>.applied.<egress>.<instance>` with generation, digest and swap time. Pure. */
export const appliedEvent = (b: RolloutInput<RolloutAppliedEvent>) => rolloutAppliedEvent(b)

/** `…rollout.<zone>.rejected.<egress>.<instance>` with the reason (generation/digest when known). Pure. */
export const rejectedEvent = (b: RolloutInput<RolloutRejectedEvent>) => rolloutRejectedEvent(b)
