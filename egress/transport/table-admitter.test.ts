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
})
