import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  commitConvergedEvent,
  commitFetchedEvent,
  commitInvalidEvent,
  commitPublishedEvent,
  rolloutAppliedEvent,
  rolloutConvergedEvent,
  rolloutPublishedEvent,
} from '../../reconciler/core/events.js'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import { emitEvent } from '../../reconciler/transport/nats-publisher.js'
import { EVENTS_STREAM } from '../../schemas/subjects.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'

/**
 * `zonegate rollout watch` (the BUILT CLI, dist/cli/main.js) against a real nats-server with stream
 * ZONEGATE_EVENTS created by the reconciler's ensureNatsLayout; events are published with the reconciler's
 * builders, as the reconciler and egresses do.
 */
const root = resolve(import.meta.dirname, '../..')
const cli = resolve(root, 'dist/cli/main.js')

const shaOf = (n: number) => n.toString(16).padStart(2, '0').repeat(20)
const revision = (n: number) => `main@sha1:${shaOf(n)}`
const time = new Date('2025-01-01T00:00:00Z')

let nats: NatsServer
let bus: Bus

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('node', [cli, ...args, '--nats', nats.url], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? -1) : 0
      done({ code: typeof code === 'number' ? code : -1, stdout, stderr })
    })
  })
}

/** Publishes a whole successful rollout of commit n on zone-a (generation gen, two instances). */
async function publishConverged(n: number, gen: number): Promise<void> {
  const b = { revision: revision(n), time }
  const digest = `sha256:${'ab'.repeat(32)}`
  await emitEvent(bus, commitFetchedEvent(b))
  await emitEvent(
    bus,
    commitPublishedEvent({ ...b, zones: [{ zone: 'zone-a', generation: gen, digest, change: 'changed' }] }),
  )
  await emitEvent(bus, rolloutPublishedEvent({ ...b, zone: 'zone-a', generation: gen, digest }))
  for (const instance of ['egress.1', 'egress.2'])
    await emitEvent(
      bus,
      rolloutAppliedEvent({ ...b, zone: 'zone-a', egress: 'ze-a', instance, generation: gen, digest, swapMs: 3 }),
    )
  await emitEvent(
    bus,
    rolloutConvergedEvent({
      ...b,
      zone: 'zone-a',
      generation: gen,
      digest,
      instances: ['ze-a/egress.1', 'ze-a/egress.2'],
      ms: 42,
    }),
  )
  await emitEvent(bus, commitConvergedEvent({ ...b, zones: ['zone-a'] }))
}

beforeAll(async () => {
  expect(existsSync(cli), 'run `npm run build` first').toBe(true)
  nats = await startNatsServer()
  bus = await connectBus({ servers: [nats.url], name: 'test', log: pino({ level: 'silent' }) })
  await ensureNatsLayout(bus)
  // an older commit in the stream, which a replay of a later commit must not show
  await publishConverged(1, 7)
})

afterAll(async () => {
  await bus?.close()
  await nats?.stop()
})

describe('rollout watch', () => {
  it('rollout watch - replays a converged commit and exits 0', async () => {
    await publishConverged(2, 8)
    const r = await runCli(['rollout', 'watch', '--commit', shaOf(2), '--until', 'converged'])
    expect(r.stderr).toBe('')
    // each event line starts with the event's time of day (UTC); the summary does not
    const lines = r.stdout.trim().split('\n')
    expect(lines.slice(0, -1).every((l) => /^\d\d:\d\d:\d\d\.\d{3}Z {2}/.test(l))).toBe(true)
    expect(lines.map((l) => l.replace(/^\d\d:\d\d:\d\d\.\d{3}Z {2}/, ''))).toEqual([
      `commit ${shaOf(2).slice(0, 7)}  fetched  ${revision(2)}`,
      `commit ${shaOf(2).slice(0, 7)}  published  zones: zone-a(gen 8)`,
      'zone-a  published  gen 8  sha256:abababababab',
      'zone-a  applied  ze-a/egress.1  gen 8  3 ms',
      'zone-a  applied  ze-a/egress.2  gen 8  3 ms',
      'zone-a  converged  gen 8  2 instance(s)  42 ms',
      `commit ${shaOf(2).slice(0, 7)}  converged  zones: zone-a`,
      expect.stringMatching(/^converged {2}commit 0202020 {2}zone-a\(gen 8, 2 instance\(s\), 42 ms\)/),
    ])
    expect(r.code).toBe(0)
  })

  it('rollout watch - a sha prefix and --output json print one event per line', async () => {
    const r = await runCli(['rollout', 'watch', '--commit', shaOf(2).slice(0, 8), '--output', 'json'])
    const objs = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; revision?: string; outcome?: string })
    expect(objs.map((o) => o.type)).toEqual([
      'commit.fetched',
      'commit.published',
      'rollout.published',
      'rollout.applied',
      'rollout.applied',
      'rollout.converged',
      'commit.converged',
      'watch.result',
    ])
    expect(objs.slice(0, -1).every((o) => o.revision === revision(2))).toBe(true)
    expect(objs.at(-1)?.outcome).toBe('converged')
    expect(r.code).toBe(0)
  })

  it('rollout watch - an invalid commit exits 1 and shows file:line:column', async () => {
    const b = { revision: revision(3), time }
    await emitEvent(bus, commitFetchedEvent(b))
    await emitEvent(
      bus,
      commitInvalidEvent({
        ...b,
        violations: [
          {
            file: 'zone-egresses/zone-a/egress-1.yaml',
            line: 9,
            column: 11,
            kind: 'ZoneEgress',
            name: 'ze-a',
            path: 'networking.port',
            rule: 'schema.maximum',
            message: 'must be <= 65535',
          },
        ],
      }),
    )
    const r = await runCli(['rollout', 'watch', '--commit', shaOf(3), '--until', 'converged'])
    expect(r.stdout).toContain(`commit ${shaOf(3).slice(0, 7)}  invalid  1 violation(s)`)
    expect(r.stdout).toContain(
      '  zone-egresses/zone-a/egress-1.yaml:9:11 ZoneEgress/ze-a networking.port: must be <= 65535',
    )
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^invalid {2}commit/)
    expect(r.code).toBe(1)
  })

  it('rollout watch - a commit that never converges times out with exit 1', async () => {
    const b = { revision: revision(4), time }
    await emitEvent(
      bus,
      commitPublishedEvent({ ...b, zones: [{ zone: 'zone-b', generation: 2, digest: 'sha256:cd', change: 'added' }] }),
    )
    const t0 = Date.now()
    const r = await runCli(['rollout', 'watch', '--commit', shaOf(4), '--until', 'converged', '--timeout', '1s'])
    expect(Date.now() - t0).toBeLessThan(10_000)
    expect(r.stdout).toContain('published  zones: zone-b(gen 2, added)')
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^timeout .*waiting for zone-b/)
    expect(r.code).toBe(1)
  })

  it('rollout watch - without --commit follows the next commit that appears', async () => {
    const consumersBefore = (await bus.jsm.consumers.list(EVENTS_STREAM).next()).length
    const watching = runCli(['rollout', 'watch', '--until', 'converged', '--timeout', '15s'])
    // wait until the watcher's ordered consumer exists, so the events below are "new" to it
    const deadline = Date.now() + 10_000
    while ((await bus.jsm.consumers.list(EVENTS_STREAM).next()).length <= consumersBefore) {
      if (Date.now() > deadline) throw new Error('watcher consumer did not appear')
      await new Promise((r) => setTimeout(r, 50))
    }
    await publishConverged(5, 9)
    const r = await watching
    expect(r.stdout).not.toContain(shaOf(2).slice(0, 7))
    expect(r.stdout).toContain(`commit ${shaOf(5).slice(0, 7)}  converged  zones: zone-a`)
    expect(r.code).toBe(0)
  })
})
