import type {
  CommitConvergedEvent,
  CommitFetchedEvent,
  CommitInvalidEvent,
  CommitPublishedEvent,
  CommitStalledEvent,
  CommitSupersededEvent,
  RolloutConvergedEvent,
  RolloutPublishedEvent,
  RolloutTimeoutEvent,
  ZonegateEvent,
} from '../../schemas/events.js'
import { type BuiltEvent, type EventBase, iso, type RolloutInput, revisionSha } from '../../schemas/instance-events.js'
import { commitSubject, eventMsgId, generationPart, rolloutSubject } from '../../schemas/subjects.js'

export {
  type BuiltEvent,
  type EventBase,
  instanceMsgPart,
  revisionSha,
  rolloutAppliedEvent,
  rolloutRejectedEvent,
} from '../../schemas/instance-events.js'

/**
 * Pure builders of the commit and zone events of docs/design.md §3 (the per-instance applied/rejected builders live in
 * schemas/instance-events.ts, shared with the egress). Each returns the subject, the `Nats-Msg-Id` and the payload.
 */

/**
 * Input of the commit builders: `publication` is the last part of the msg id (schemas/subjects.ts
 * `eventMsgId`): `g<highest generation>` for a publication's events, `p<pass start ms>` before publishing.
 */
export type CommitBase = EventBase & { publication?: string }

/** The publication part for the commit events of a publication: `g<highest generation of its zones>`. Pure. */
export const commitPublication = (zones: readonly { generation: number }[]) =>
  `g${zones.reduce((m, z) => Math.max(m, z.generation), 0)}`

/** The publication part for the commit events of a pass before it publishes: `p<pass start ms>`. Pure. */
export const passPublication = (passStart: Date) => `p${passStart.getTime()}`

function commit<E extends ZonegateEvent>(b: CommitBase, phase: string, rest: object): BuiltEvent<E> {
  const sha = revisionSha(b.revision)
  return {
    subject: commitSubject(sha, phase),
    msgId: eventMsgId(sha, undefined, undefined, phase, b.publication),
    payload: { type: `commit.${phase}`, time: iso(b.time), revision: b.revision, sha, ...rest } as unknown as E,
  }
}

/** `zonegate.events.commit.<sha>.fetched`. Pure. */
export const commitFetchedEvent = (b: CommitBase) => commit<CommitFetchedEvent>(b, 'fetched', {})

/** `zonegate.events.commit.<sha>.invalid` with every violation. Pure. */
export const commitInvalidEvent = (
  b: CommitBase & Pick<CommitInvalidEvent, 'violations'> & Partial<Pick<CommitInvalidEvent, 'reason' | 'zones'>>,
) =>
  commit<CommitInvalidEvent>(b, 'invalid', {
    violations: b.violations,
    ...(b.reason ? { reason: b.reason } : {}),
    ...(b.zones ? { zones: b.zones } : {}),
  })

/** `zonegate.events.commit.<sha>.published` with the zones written (generation, digest, change). Pure. */
export const commitPublishedEvent = (b: CommitBase & Pick<CommitPublishedEvent, 'zones'>) =>
  commit<CommitPublishedEvent>(b, 'published', { zones: b.zones })

/** `zonegate.events.commit.<sha>.superseded`, `by` = the revision that replaced it. Pure. */
export const commitSupersededEvent = (b: CommitBase & Pick<CommitSupersededEvent, 'by'>) =>
  commit<CommitSupersededEvent>(b, 'superseded', { by: b.by })

/** `zonegate.events.commit.<sha>.converged`: every zone of the commit converged. Pure. */
export const commitConvergedEvent = (b: CommitBase & Pick<CommitConvergedEvent, 'zones'>) =>
  commit<CommitConvergedEvent>(b, 'converged', { zones: b.zones })

/** `zonegate.events.commit.<sha>.stalled` with a reason and message. Pure. */
export const commitStalledEvent = (b: CommitBase & Pick<CommitStalledEvent, 'reason' | 'message'>) =>
  commit<CommitStalledEvent>(b, 'stalled', { reason: b.reason, message: b.message })

function rollout<E extends ZonegateEvent>(
  b: EventBase & { zone: string; generation: number },
  phase: string,
  rest: object,
): BuiltEvent<E> {
  const sha = revisionSha(b.revision)
  return {
    subject: rolloutSubject(b.zone, phase),
    msgId: eventMsgId(sha, b.zone, undefined, phase, generationPart(b.generation)),
    payload: {
      type: `rollout.${phase}`,
      time: iso(b.time),
      revision: b.revision,
      zone: b.zone,
      ...rest,
    } as unknown as E,
  }
}

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
