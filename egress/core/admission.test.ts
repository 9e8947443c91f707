import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { tableDigest } from '../../schemas/digest.js'
import { generateSigningKey, loadSigningKey, signTable } from '../../schemas/signing.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { encodeTableBody, tableEnvelopeJson } from '../../schemas/table-transport.js'
import {
  type AdmissionPhases,
  admit,
  admitChecked,
  admittedValue,
  fileProblem,
  jsonErrorAt,
  lineColumn,
  RejectedTable,
} from './admission.js'
import { CompactZoneTable } from './compact-table.js'
import { validateTableEnvelope } from './routing-table.js'

function smallTable(n: number): PublishedZoneTable {
  const routes = Array.from({ length: n }, (_, i) => ({
    sni: `svc-${String(i).padStart(3, '0')}{mesh=default}`,
    mesh: 'default',
    service: `svc-${i}`,
    kind: 'external' as const,
    mode: 'passthrough' as const,
    upstreams: [{ address: `10.0.0.${i % 250}`, port: 443, weight: 1 }],
  }))
  const body = { zone: 'zone-a', egresses: [{ name: 'ze-a', port: 10002 }], routes }
  return {
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    generation: 1,
    revision: `main@sha1:${'1'.repeat(40)}`,
    digest: tableDigest(body),
    ...body,
  }
}
const t = smallTable(50)
const json = JSON.stringify(t)
const bytes = Buffer.from(json)
const encoded = encodeTableBody(json, t, { bucket: 'b', name: 'zone-a.table.1' })

describe('admission', () => {
  it('admission - a body that matches its head is admitted compact, equal to the envelope', () => {
    const out = admit({ kind: 'body', head: encoded.head, bytes: encoded.body, zone: 'zone-a' })
    expect(out.ok).toBe(true)
    const v = admittedValue(out)
    expect(v).toBeInstanceOf(CompactZoneTable)
    expect(JSON.parse(JSON.stringify(v))).toEqual(t)
  })

  it('admission - inline JSON and the state file are admitted the same way', () => {
    for (const from of ['kv', 'file'] as const)
      expect((admittedValue(admit({ kind: 'json', from, bytes, zone: 'zone-a' })) as CompactZoneTable).routes).toEqual(
        t.routes,
      )
  })

  it.each([
    [
      'a body whose bytes differ from the head (sha256)',
      { kind: 'body' as const, head: encoded.head, bytes: Buffer.from(encoded.body).fill(1, 20, 21) },
      { stage: 'body', reason: 'body-mismatch' },
    ],
    [
      'a digest that does not match the routes',
      {
        kind: 'json' as const,
        from: 'kv' as const,
        bytes: Buffer.from(JSON.stringify({ ...t, digest: `sha256:${'0'.repeat(64)}` })),
      },
      { stage: 'envelope', reason: 'digest-mismatch', generation: 1 },
    ],
    [
      'a table of another zone',
      { kind: 'json' as const, from: 'kv' as const, bytes, zone: 'zone-b' },
      { stage: 'envelope', reason: 'wrong-zone' },
    ],
    [
      'a KV value that is not JSON (checked as the string it is)',
      { kind: 'json' as const, from: 'kv' as const, bytes: Buffer.from('{nope') },
      { stage: 'envelope', reason: 'invalid' },
    ],
    [
      'a state file that is not JSON',
      { kind: 'json' as const, from: 'file' as const, bytes: Buffer.from('{nope') },
      { stage: 'json', reason: 'load-failed' },
    ],
  ])('admission - refuses %s', (_name, input, want) => {
    const out = admit(input)
    expect(out).toMatchObject({ ok: false, ...want })
    if (want.stage === 'envelope') expect(admittedValue(out)).toBeInstanceOf(RejectedTable)
  })

  it('admission - with trusted keys the signature is checked in the worker too, and the keys are recorded', () => {
    const key = generateSigningKey()
    const other = generateSigningKey()
    const signed = Buffer.from(JSON.stringify(signTable(t, loadSigningKey(key.seed))))
    const ok = admit({ kind: 'json', from: 'kv', bytes: signed, zone: 'zone-a', trustedKeys: [key.publicKey] })
    expect(ok).toMatchObject({ ok: true, checkedWith: [key.publicKey] })
    expect((admittedValue(ok) as CompactZoneTable).checkedWith).toEqual([key.publicKey])
    expect(admit({ kind: 'json', from: 'kv', bytes, trustedKeys: [key.publicKey] })).toMatchObject({
      ok: false,
      reason: 'unsigned',
    })
    expect(admit({ kind: 'json', from: 'kv', bytes: signed, trustedKeys: [other.publicKey] })).toMatchObject({
      ok: false,
      reason: 'untrusted-key',
    })
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(signed.toString()), revision: 'main@sha1:forged' }))
    expect(admit({ kind: 'json', from: 'kv', bytes: forged, trustedKeys: [key.publicKey] })).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    })
  })

  it('admission - the fast checks admit exactly the tables validateTableEnvelope admits, with the same routes (property)', () => {
    const key = generateSigningKey()
    const signer = loadSigningKey(key.seed)
    const hostile = fc.constantFrom<unknown>(undefined, null, 0, -1, 1.5, 70000, '', 'X'.repeat(300), [], {}, [
      'a',
      'a',
    ])
    /** `v` with the member at a random path replaced by `x` (removed when undefined), or a key added. */
    const mutate = (v: unknown, path: number[], x: unknown, add: boolean): unknown => {
      if (typeof v !== 'object' || v === null) return x
      const copy = (Array.isArray(v) ? [...v] : { ...v }) as Record<string, unknown>
      const keys = Object.keys(copy)
      const [head, ...rest] = path as [number, ...number[]]
      if (keys.length === 0) return copy
      if (add && rest.length === 0 && !Array.isArray(v)) return { ...copy, [`x${head}`]: 1 }
      const k = keys[head % keys.length]!
      const next = rest.length === 0 ? x : mutate(copy[k], rest, x, add)
      if (next === undefined && !Array.isArray(v)) delete copy[k]
      else copy[k] = next
      return copy
    }
    fc.assert(
      fc.property(
        fc.array(fc.nat(), { minLength: 1, maxLength: 5 }),
        hostile,
        fc.boolean(),
        fc.constantFrom('none', 'redigest', 'dup', 'sign', 'sign-then-break'),
        fc.boolean(),
        (path, x, add, how, asPublished) => {
          let table = { ...t, routes: t.routes.slice(0, 6) } as Record<string, unknown>
          table.routes = (table.routes as unknown[]).map((r, i) =>
            i === path[0]! % 6 ? mutate(r, path.slice(1).length ? path.slice(1) : [0], x, add) : r,
          )
          if (how === 'dup') table.routes = [...(table.routes as unknown[]), (table.routes as unknown[])[0]]
          if (how !== 'none') table.digest = tableDigest(table as never)
          if (how.startsWith('sign')) table = signTable(table as never, signer) as never
          if (how === 'sign-then-break') table.revision = 'main@sha1:other'
          const trusted = how.startsWith('sign') ? [key.publicKey] : []
          // as the reconciler writes it (routes' members sorted: JSON.stringify is their canonical JSON), or not
          const json = asPublished ? tableEnvelopeJson(table as never) : JSON.stringify(table)
          const value = JSON.parse(json)
          const slow = validateTableEnvelope(JSON.parse(json), 'zone-a', trusted)
          const fast = admitChecked(value, 'zone-a', trusted)
          expect(fast !== undefined, JSON.stringify(slow)).toBe(slow.ok)
          if (fast && slow.ok) {
            const { routes: _r, ...meta } = fast.table
            expect(new CompactZoneTable(meta, fast.compact).routes).toEqual(slow.table.routes)
            const { routes: _s, ...slowMeta } = slow.table
            expect(meta).toEqual(slowMeta)
          }
          // and admit() reports a refusal exactly as validateTableEnvelope does
          const out = admit({
            kind: 'json',
            from: 'kv',
            bytes: Buffer.from(json),
            zone: 'zone-a',
            trustedKeys: trusted,
          })
          if (!slow.ok)
            expect(out).toMatchObject({ ok: false, stage: 'envelope', reason: slow.reason, problems: slow.problems })
          else expect(out.ok).toBe(true)
        },
      ),
      { numRuns: 400 },
    )
  })

  it('admission - an admitted table reports the time of each stage', () => {
    const phases: Partial<AdmissionPhases> = {}
    expect(admit({ kind: 'body', head: encoded.head, bytes: encoded.body, zone: 'zone-a' }, phases).ok).toBe(true)
    expect(Object.keys(phases).sort()).toEqual(['check', 'compact', 'decode', 'digest'])
    for (const v of Object.values(phases)) expect(v).toBeGreaterThanOrEqual(0)
  })
})

describe('admission - where a file that is not JSON went wrong', () => {
  it('admission - lineColumn counts lines and columns from 1', () => {
    const text = 'ab\ncd\n\nef'
    expect(lineColumn(text, 0)).toEqual({ line: 1, column: 1 })
    expect(lineColumn(text, 2)).toEqual({ line: 1, column: 3 })
    expect(lineColumn(text, 3)).toEqual({ line: 2, column: 1 })
    expect(lineColumn(text, 6)).toEqual({ line: 3, column: 1 })
    expect(lineColumn(text, 8)).toEqual({ line: 4, column: 2 })
    expect(lineColumn(text, 99)).toEqual({ line: 4, column: 3 })
  })

  it('admission - jsonErrorAt reads the position out of JSON.parse messages, and a message without one gives none', () => {
    const text = '{\n  "a": 1,\n}\n'
    let message = ''
    try {
      JSON.parse(text)
    } catch (err) {
      message = (err as Error).message
    }
    expect(jsonErrorAt(text, message)).toEqual({ line: 3, column: 1 })
    expect(jsonErrorAt('{', 'Unexpected end of JSON input')).toBeUndefined()
    expect(jsonErrorAt(text, "Expected ',' or '}' in JSON at position 12 (line 3 column 1)")).toEqual({
      line: 3,
      column: 1,
    })
  })

  it('admission - a file that is not JSON is refused with FILE:LINE:COLUMN, one without a position with FILE only', () => {
    const out = admit({ kind: 'json', from: 'file', bytes: Buffer.from('{\n  "routes": [],\n  }') })
    expect(out).toMatchObject({ ok: false, stage: 'json', at: { line: 3, column: 3 } })
    expect(fileProblem('/etc/t.json', out)).toMatch(/^\/etc\/t\.json:3:3: not JSON: \S/)
    const cut = admit({ kind: 'json', from: 'file', bytes: Buffer.from('{"routes": [') })
    expect(cut).toMatchObject({ ok: false, stage: 'json' })
    expect(fileProblem('/etc/t.json', cut)).toMatch(/^\/etc\/t\.json: not JSON: Unexpected end of JSON input$/)
  })
})
