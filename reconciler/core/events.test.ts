import { describe, expect, it } from 'vitest'
import {
  commitConvergedEvent,
  commitFetchedEvent,
  commitInvalidEvent,
  commitPublication,
  commitPublishedEvent,
  commitStalledEvent,
  commitSupersededEvent,
  passPublication,
  revisionSha,
  rolloutAppliedEvent,
  rolloutConvergedEvent,
  rolloutPublishedEvent,
  rolloutRejectedEvent,
  rolloutTimeoutEvent,
} from './events.js'

const SHA = 'abcdef0123456789abcdef0123456789abcdef01'
const REV = `main@sha1:${SHA}`
const T = new Date('2026-01-02T03:04:05.000Z')
const base = { revision: REV, time: T }
const violation = {
  file: 'meshes/default.yaml',
  line: 3,
  column: 5,
  kind: 'Mesh',
  name: 'default',
  path: 'mtls',
  rule: 'mesh.zone-egress-requires-mtls',
  message: 'has to be set when zoneEgress enabled',
}

describe('event builders', () => {
  const cases = [
    {
      name: 'commit fetched',
      built: commitFetchedEvent(base),
      subject: `zonegate.events.commit.${SHA}.fetched`,
      msgId: `${SHA}:-:-:fetched`,
      payload: { type: 'commit.fetched', sha: SHA },
    },
    {
      name: 'commit invalid carries every violation',
      built: commitInvalidEvent({ ...base, violations: [violation, { ...violation, line: 9 }] }),
      subject: `zonegate.events.commit.${SHA}.invalid`,
      msgId: `${SHA}:-:-:invalid`,
      payload: { type: 'commit.invalid', violations: [violation, { ...violation, line: 9 }] },
    },
    {
      name: 'commit published',
      built: commitPublishedEvent({
        ...base,
        zones: [{ zone: 'zone-a', generation: 2, digest: 'sha256:x', change: 'changed' }],
      }),
      subject: `zonegate.events.commit.${SHA}.published`,
      msgId: `${SHA}:-:-:published`,
      payload: {
        type: 'commit.published',
        zones: [{ zone: 'zone-a', generation: 2, digest: 'sha256:x', change: 'changed' }],
      },
    },
    {
      name: 'commit superseded names the newer revision',
      built: commitSupersededEvent({ ...base, by: 'main@sha1:ff' }),
      subject: `zonegate.events.commit.${SHA}.superseded`,
      msgId: `${SHA}:-:-:superseded`,
      payload: { type: 'commit.superseded', by: 'main@sha1:ff' },
    },
    {
      name: 'commit converged',
      built: commitConvergedEvent({ ...base, zones: ['zone-a'] }),
      subject: `zonegate.events.commit.${SHA}.converged`,
      msgId: `${SHA}:-:-:converged`,
      payload: { type: 'commit.converged', zones: ['zone-a'] },
    },
    {
      name: 'commit stalled',
      built: commitStalledEvent({ ...base, reason: 'ValidationFailed', message: 'bad' }),
      subject: `zonegate.events.commit.${SHA}.stalled`,
      msgId: `${SHA}:-:-:stalled`,
      payload: { type: 'commit.stalled', reason: 'ValidationFailed', message: 'bad' },
    },
    {
      name: 'rollout published',
      built: rolloutPublishedEvent({ ...base, zone: 'zone-a', generation: 4, digest: 'sha256:d' }),
      subject: 'zonegate.events.rollout.zone-a.published',
      msgId: `${SHA}:zone-a:-:published:g4`,
      payload: { type: 'rollout.published', zone: 'zone-a', generation: 4, digest: 'sha256:d' },
    },
    {
      name: 'rollout converged',
      built: rolloutConvergedEvent({
        ...base,
        zone: 'zone-a',
        generation: 4,
        digest: 'sha256:d',
        instances: ['ze-a/1'],
        ms: 12,
      }),
      subject: 'zonegate.events.rollout.zone-a.converged',
      msgId: `${SHA}:zone-a:-:converged:g4`,
      payload: { type: 'rollout.converged', instances: ['ze-a/1'], ms: 12 },
    },
    {
      name: 'rollout timeout names missing instances',
      built: rolloutTimeoutEvent({ ...base, zone: 'zone-b', generation: 1, digest: 'sha256:e', missing: ['ze-b/2'] }),
      subject: 'zonegate.events.rollout.zone-b.timeout',
      msgId: `${SHA}:zone-b:-:timeout:g1`,
      payload: { type: 'rollout.timeout', missing: ['ze-b/2'] },
    },
    {
      name: 'rollout applied per instance (egress name with a dot is encoded)',
      built: rolloutAppliedEvent({
        ...base,
        zone: 'zone-a',
        egress: 'ze.a',
        instance: '1',
        generation: 4,
        digest: 'sha256:d',
        swapMs: 0.4,
      }),
      subject: 'zonegate.events.rollout.zone-a.applied.ze=2Ea.1',
      msgId: `${SHA}:zone-a:ze=2Ea/1:applied:g4`,
      payload: { type: 'rollout.applied', egress: 'ze.a', instance: '1', swapMs: 0.4 },
    },
    {
      name: 'rollout rejected per instance with the reason',
      built: rolloutRejectedEvent({
        ...base,
        zone: 'zone-a',
        egress: 'ze-a',
        instance: '2',
        reason: 'stale generation',
      }),
      subject: 'zonegate.events.rollout.zone-a.rejected.ze-a.2',
      msgId: `${SHA}:zone-a:ze-a/2:rejected`,
      payload: { type: 'rollout.rejected', reason: 'stale generation' },
    },
  ]

  for (const c of cases) {
    it(`event builders - ${c.name}`, () => {
      expect(c.built.subject).toBe(c.subject)
      expect(c.built.msgId).toBe(c.msgId)
      expect(c.built.payload).toMatchObject({ ...c.payload, revision: REV, time: '2026-01-02T03:04:05.000Z' })
    })
  }

  it('event builders - rejected without generation has no generation key', () => {
    const e = rolloutRejectedEvent({ ...base, zone: 'z', egress: 'e', instance: 'i', reason: 'bad signature' })
    expect(Object.keys(e.payload)).not.toContain('generation')
    expect(Object.keys(e.payload)).not.toContain('digest')
  })

  it('event builders - a string time is kept as is', () => {
    expect(commitFetchedEvent({ revision: REV, time: '2026-05-05T00:00:00Z' }).payload.time).toBe(
      '2026-05-05T00:00:00Z',
    )
  })

  const shas = [
    { revision: REV, sha: SHA },
    { revision: `feature/x@sha1:${'1'.repeat(40)}`, sha: '1'.repeat(40) },
    { revision: 'path:gitops-example', sha: 'path=3Agitops-example' },
    { revision: 'main@sha1:short', sha: 'main=40sha1=3Ashort' },
  ]
  for (const c of shas) {
    it(`event builders - revisionSha(${c.revision}) is one subject token`, () => {
      expect(revisionSha(c.revision)).toBe(c.sha)
      expect(revisionSha(c.revision)).not.toMatch(/[.*> ]/)
    })
  }
})

describe('event msg ids per publication', () => {
  const SHA = 'abcdef0123456789abcdef0123456789abcdef01'
  const base = { revision: `main@sha1:${SHA}`, time: new Date('2026-01-02T03:04:05Z') }
  it('event ids - two publications of one commit have different ids; a retry of one has the same', () => {
    const first = rolloutPublishedEvent({ ...base, zone: 'zone-a', generation: 2, digest: 'sha256:d' })
    const again = rolloutPublishedEvent({ ...base, zone: 'zone-a', generation: 4, digest: 'sha256:d' })
    expect(first.msgId).not.toBe(again.msgId)
    expect(rolloutPublishedEvent({ ...base, zone: 'zone-a', generation: 2, digest: 'sha256:d' }).msgId).toBe(
      first.msgId,
    )
    const zones = (g: number) => [{ zone: 'zone-a', generation: g, digest: 'sha256:d', change: 'changed' as const }]
    const p1 = commitPublishedEvent({ ...base, zones: zones(2), publication: commitPublication(zones(2)) })
    const p2 = commitPublishedEvent({ ...base, zones: zones(4), publication: commitPublication(zones(4)) })
    expect(p1.msgId).toBe(`${SHA}:-:-:published:g2`)
    expect(p2.msgId).toBe(`${SHA}:-:-:published:g4`)
    const f = commitFetchedEvent({ ...base, publication: passPublication(new Date(1000)) })
    expect(f.msgId).toBe(`${SHA}:-:-:fetched:p1000`)
  })
})
