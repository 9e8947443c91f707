import { describe, expect, it } from 'vitest'
import { generateSigningKey, loadSigningKey, signTable } from '../../schemas/signing.js'
import type { ZoneTable } from '../../schemas/table.js'
import { buildTable, route } from '../../test/helpers/table.js'
import { admitTable, type EgressContext, initialContext, resyncOnRemoval } from './egress-context.js'

const signer = loadSigningKey(generateSigningKey().seed)
const intruder = loadSigningKey(generateSigningKey().seed)
const TRUSTED = [signer.publicKey]

function table(generation: number, port = 10001): ZoneTable {
  return buildTable([route('orders{mesh=default}', port, { service: 'orders' })], {
    generation,
    revision: `main@sha1:${String(generation).padStart(40, '0')}`,
  })
}

describe('egress-context - signed admission', () => {
  const served = signTable(table(5), signer)
  const cases: [string, unknown, string | null][] = [
    ['a newer table signed by the trusted key', signTable(table(6, 2), signer), null],
    ['an unsigned newer table', table(6, 2), 'unsigned'],
    ['a newer table signed by an untrusted key', signTable(table(6, 2), intruder), 'untrusted-key'],
    [
      'a forged table claiming the trusted key',
      {
        ...signTable(table(6, 6666), intruder),
        signature: { ...signTable(table(6), intruder).signature!, key: signer.publicKey },
      },
      'bad-signature',
    ],
    ['a genuine older table (replay)', signTable(table(4), signer), 'stale-generation'],
    ['the served table again (replay, equal generation)', served, 'stale-generation'],
    [
      'a genuine table re-labelled with a higher generation',
      { ...signTable(table(4), signer), generation: 9 },
      'bad-signature',
    ],
  ]
  it.each(cases)('egress-context - %s', (_n, value, reason) => {
    const a = admitTable(served, value, 'nats', 'zone-a', TRUSTED)
    if (reason === null) expect(a.ok).toBe(true)
    else expect(a).toMatchObject({ ok: false, reason })
  })

  it('egress-context - without trusted keys an unsigned table is admitted (today’s behaviour)', () => {
    expect(admitTable(served, table(6), 'nats', 'zone-a').ok).toBe(true)
    expect(admitTable(served, table(6), 'nats', 'zone-a', []).ok).toBe(true)
  })

  it('egress-context - a static file is checked too when trusted keys are set', () => {
    expect(admitTable(undefined, table(1), 'file', 'zone-a', TRUSTED)).toMatchObject({ ok: false, reason: 'unsigned' })
    expect(admitTable(undefined, signTable(table(1), signer), 'file', 'zone-a', TRUSTED).ok).toBe(true)
  })

  const ctx = (trustedKeys?: string[], resync = false): EgressContext => ({
    ...initialContext({ source: 'nats', zone: 'zone-a', instance: 'i', ...(trustedKeys ? { trustedKeys } : {}) }),
    resync,
  })
  it.each([
    ['no trusted key, key deleted', ctx(), {}, true],
    ['trusted key, key deleted (a bucket writer could replay after it)', ctx(TRUSTED), {}, false],
    ['trusted key, bucket recreated (generations restart)', ctx(TRUSTED), { generationsRestart: true }, true],
    ['trusted key, already resyncing (served table is the state file)', ctx(TRUSTED, true), {}, true],
  ])('egress-context - resyncOnRemoval: %s', (_n, c, event, expected) => {
    expect(resyncOnRemoval(c, event)).toBe(expected)
  })
})
