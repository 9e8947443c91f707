import { describe, expect, it } from 'vitest'
import { rolloutAppliedEvent, rolloutRejectedEvent } from './instance-events.js'
import {
  decodeEvent,
  decodeHeartbeat,
  decodeReconcileReply,
  decodeReconcileRequest,
  MAX_MESSAGE_BYTES,
  parseEvent,
} from './messages.js'

const REV = `main@sha1:${'a'.repeat(40)}`
const DIGEST = `sha256:${'b'.repeat(64)}`
const time = '2026-01-01T00:00:00.000Z'
const applied = rolloutAppliedEvent({
  revision: REV,
  time,
  zone: 'zone-a',
  egress: 'ze-a',
  instance: 'egress.1',
  generation: 3,
  digest: DIGEST,
  swapMs: 1.5,
}).payload
const rejected = rolloutRejectedEvent({
  revision: REV,
  time,
  zone: 'zone-a',
  egress: 'ze-a',
  instance: 'egress.1',
  reason: 'bad-signature: x',
}).payload

describe('messages', () => {
  const events: [string, unknown, RegExp | null][] = [
    ['an applied event (builder output)', JSON.stringify(applied), null],
    ['a rejected event without generation', JSON.stringify(rejected), null],
    ['a commit event', JSON.stringify({ type: 'commit.fetched', time, revision: REV, sha: 'a'.repeat(40) }), null],
    ['an event with an extra member (newer sender)', JSON.stringify({ ...applied, extra: 1 }), null],
    ['not JSON', '{"type":', /not JSON/],
    ['JSON but not an object', '42', /unknown message type/],
    ['null', 'null', /unknown message type/],
    ['an unknown type', JSON.stringify({ ...applied, type: 'rollout.exploded' }), /unknown message type/],
    ['a type that is not a string', JSON.stringify({ ...applied, type: ['rollout.applied'] }), /unknown message type/],
    ['a missing zone', JSON.stringify({ ...applied, zone: undefined }), /zone is required/],
    ['a negative generation', JSON.stringify({ ...applied, generation: -1 }), /generation/],
    ['a generation that is a string', JSON.stringify({ ...applied, generation: '3' }), /generation/],
    ['an empty instance', JSON.stringify({ ...applied, instance: '' }), /instance/],
    ['a huge reason', JSON.stringify({ ...rejected, reason: 'x'.repeat(70_000) }), /reason/],
    [
      'zones that are not a list',
      JSON.stringify({ type: 'commit.converged', time, revision: REV, sha: 'a', zones: 'a' }),
      /zones/,
    ],
    ['a payload over the limit', `{"pad":"${'x'.repeat(MAX_MESSAGE_BYTES)}"}`, /limit/],
  ]
  it.each(events)('messages - event: %s', (_n, payload, problem) => {
    const r = decodeEvent(payload)
    if (problem === null) expect(r.ok).toBe(true)
    else expect(r).toMatchObject({ ok: false, problem: expect.stringMatching(problem) })
    // raw bytes decode the same way as text
    if (typeof payload === 'string') expect(decodeEvent(Buffer.from(payload)).ok).toBe(r.ok)
  })

  const heartbeats: [string, unknown, boolean][] = [
    ['a heartbeat', { state: 'serving', generation: 2, digest: DIGEST, listen: '127.0.0.1:1', time }, true],
    ['without a table yet', { state: 'awaitingTable', time }, true],
    ['with its period', { state: 'serving', heartbeatMs: 300, time }, true],
    ['a period that is not a number', { state: 'serving', heartbeatMs: 'fast', time }, false],
    ['no state', { time }, false],
    ['state not a string', { state: 1, time }, false],
    ['a fractional generation', { state: 'serving', generation: 1.5, time }, false],
    ['an array', [], false],
  ]
  it.each(heartbeats)('messages - heartbeat: %s', (_n, value, ok) => {
    expect(decodeHeartbeat(Buffer.from(JSON.stringify(value))).ok).toBe(ok)
  })

  it.each([
    ['empty', '', true],
    ['the CLI request', JSON.stringify({ requestedAt: time }), true],
    ['an unknown member', JSON.stringify({ requestedAt: time, rm: '-rf' }), false],
    ['not JSON', 'reconcile please', false],
  ])('messages - reconcile request: %s', (_n, text, ok) => {
    expect(decodeReconcileRequest(text).ok).toBe(ok)
  })

  it.each([
    ['ok', { ok: true, revision: REV }, true],
    ['error', { ok: false, error: 'no' }, true],
    ['ok without revision', { ok: true }, false],
    ['ok not a boolean', { ok: 'yes', revision: REV }, false],
  ])('messages - reconcile reply: %s', (_n, value, ok) => {
    expect(decodeReconcileReply(JSON.stringify(value)).ok).toBe(ok)
  })

  it.each([
    ['{"type":"commit.fetched","revision":"x","time":"t","sha":"a"}', 'commit.fetched'],
    ['not json', undefined],
    ['{"no":"type"}', undefined],
    ['[1]', undefined],
  ])('messages - parseEvent %s', (text, type) => {
    expect(parseEvent(text)?.type).toBe(type)
  })
})
