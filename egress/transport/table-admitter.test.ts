import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { largeTable } from '../../test/helpers/large-table.js'
import { admit } from '../core/admission.js'
import { LARGE_INPUT_BYTES, startTableAdmitter, type TableAdmitter } from './table-admitter.js'

const log = pino({ level: 'silent' })
let admitter: TableAdmitter | undefined
afterEach(async () => {
  await admitter?.close()
})

describe('table admitter', () => {
  it('table admitter - admits in a worker thread, with the same outcome as on the event loop', async () => {
    admitter = startTableAdmitter(log)
    const bytes = Buffer.from(JSON.stringify(largeTable(200)))
    const input = { kind: 'json' as const, from: 'kv' as const, bytes, zone: 'zone-a' }
    const r = await admitter.admit(input)
    expect(r.thread).toBe('worker')
    expect(r.out).toEqual(admit(input))
    const bad = await admitter.admit({ ...input, zone: 'zone-b' })
    expect(bad).toMatchObject({ thread: 'worker', out: { ok: false, reason: 'wrong-zone' } })
    expect(admitter.workersStarted()).toBe(1)
  })

  it('table admitter - a large input ends the worker after its admission; the next one starts a new worker', async () => {
    admitter = startTableAdmitter(log)
    const bytes = Buffer.from(JSON.stringify(largeTable(30_000)))
    expect(bytes.length).toBeGreaterThan(LARGE_INPUT_BYTES)
    const big = await admitter.admit({ kind: 'json', from: 'kv', bytes, zone: 'zone-a' })
    expect(big).toMatchObject({ thread: 'worker', out: { ok: true } })
    const small = await admitter.admit({ kind: 'json', from: 'kv', bytes: Buffer.from(JSON.stringify(largeTable(3))) })
    expect(small).toMatchObject({ thread: 'worker', out: { ok: true } })
    expect(admitter.workersStarted()).toBe(2)
    await admitter.admit({ kind: 'json', from: 'kv', bytes: Buffer.from(JSON.stringify(largeTable(3))) })
    expect(admitter.workersStarted()).toBe(2)
  })

  it('table admitter - after close, admissions run on the event loop', async () => {
    admitter = startTableAdmitter(log)
    await admitter.close()
    const r = await admitter.admit({ kind: 'json', from: 'kv', bytes: Buffer.from(JSON.stringify(largeTable(3))) })
    expect(r).toMatchObject({ thread: 'event-loop', out: { ok: true } })
  })

  it('table admitter - a table file is read in the worker thread; one that cannot be read says why, with its path', async () => {
    admitter = startTableAdmitter(log, { endAfterBytes: 0 })
    const dir = await mkdtemp(join(tmpdir(), 'table-admitter-'))
    try {
      const text = JSON.stringify(largeTable(50))
      await writeFile(join(dir, 't.json'), text)
      const r = await admitter.admit({ kind: 'file', path: join(dir, 't.json'), zone: 'zone-a' })
      expect(r).toMatchObject({ thread: 'worker', out: { ok: true } })
      expect(r.readError).toBeUndefined()
      expect(r.out).toEqual(admit({ kind: 'json', from: 'file', bytes: Buffer.from(text), zone: 'zone-a' }))
      const missing = await admitter.admit({ kind: 'file', path: join(dir, 'nope.json') })
      expect(missing.thread).toBe('worker')
      expect(missing.readError).toMatch(/^ENOENT: no such file or directory, open '.*nope\.json'$/)
      expect(missing.out).toMatchObject({ ok: false, reason: 'load-failed' })
      expect(admitter.workersStarted()).toBe(2) // endAfterBytes 0: a worker per file
      await admitter.close()
      const inline = await admitter.admit({ kind: 'file', path: join(dir, 't.json'), zone: 'zone-a' })
      expect(inline).toMatchObject({ thread: 'event-loop', out: { ok: true } })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
