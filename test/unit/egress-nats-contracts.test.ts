import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { defaultInstanceId } from '../../egress/transport/heartbeat.js'
import { appliedEvent, rejectedEvent } from '../../egress/transport/rollout-events.js'
import { loadSavedTable, saveTable, stateFilePath } from '../../egress/transport/state-store.js'
import { rolloutAppliedEvent, rolloutRejectedEvent } from '../../reconciler/core/events.js'
import { tableOf } from '../helpers/egress-fixtures.js'

/**
 * Contracts of the egress's NATS edge: its applied/rejected events are byte-for-byte what the reconciler's
 * builders make (egress/ cannot import them), the instance id rule, and the state file.
 */
const SHA = 'a'.repeat(40)
const time = new Date('2026-01-02T03:04:05.000Z')

describe('egress nats contracts', () => {
  const cases: [string, string, string][] = [
    ['plain names', 'ze-a', 'egress-1'],
    ['dotted names (foreman PS)', 'ze.a', 'egress.1'],
    ['a folder revision', 'ze-a', 'i-1'],
  ]
  it.each(cases)('rollout events - applied/rejected match the reconciler builders for %s', (n, egress, instance) => {
    const revision = n === 'a folder revision' ? 'path:/tmp/x' : `main@sha1:${SHA}`
    const base = { zone: 'zone-a', egress, instance, revision }
    expect(appliedEvent({ ...base, generation: 3, digest: 'sha256:d', swapMs: 0.5, time })).toEqual(
      rolloutAppliedEvent({ ...base, generation: 3, digest: 'sha256:d', swapMs: 0.5, time }),
    )
    expect(rejectedEvent({ ...base, reason: 'invalid: x', generation: 4, time })).toEqual(
      rolloutRejectedEvent({ ...base, reason: 'invalid: x', generation: 4, time }),
    )
  })

  const ids: [string, NodeJS.ProcessEnv, string | undefined, string][] = [
    ['--instance wins', { PS: 'egress.1' }, 'mine', 'mine'],
    ['foreman PS', { PS: 'egress.2', FOREMAN_WORKER_NAME: 'egress.9' }, undefined, 'egress.2'],
    ['node-foreman', { FOREMAN_WORKER_NAME: 'egress.3' }, undefined, 'egress.3'],
    ['hostname-pid', {}, undefined, 'host-42'],
  ]
  it.each(ids)('instance id - %s', (_n, env, flag, want) => {
    expect(defaultInstanceId(env, 'host', 42, flag)).toBe(want)
  })

  it('state store - writes per zone atomically (concurrent writers leave one whole table, no temp files)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'egress-state-'))
    try {
      expect(await loadSavedTable(dir, 'zone-a')).toBeUndefined()
      const tables = Array.from({ length: 20 }, (_, g) =>
        tableOf([{ sni: `s${g}.test`, upstreams: [{ port: 1 }] }], g + 1),
      )
      await Promise.all(tables.map((t) => saveTable(join(dir, 'sub'), t)))
      const saved = (await loadSavedTable(join(dir, 'sub'), 'zone-a')) as { generation: number }
      expect(tables.map((t) => t.generation)).toContain(saved.generation)
      expect(await readdir(join(dir, 'sub'))).toEqual(['zone-a.table.json'])
      expect(stateFilePath(dir, 'zone-b')).toBe(join(dir, 'zone-b.table.json'))
      expect(JSON.parse(await readFile(stateFilePath(join(dir, 'sub'), 'zone-a'), 'utf8'))).toEqual(saved)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
