import { describe, expect, it } from 'vitest'
import {
  generateSigningKey,
  loadSigningKey,
  signTable,
  type TableSigner,
  verifyTableSignature,
} from '../../schemas/signing.js'
import type { PublishedZoneTable, ZoneTable } from '../../schemas/table.js'
import type { Inventory } from '../pass-state.js'
import { emptiedZones, planZoneChanges } from './plan.js'

const route = (sni: string) => ({
  sni,
  mesh: 'default',
  service: sni,
  kind: 'external' as const,
  mode: 'terminate-mtls' as const,
  upstreams: [{ address: '127.0.0.1', port: 1, weight: 1 }],
})
const table = (zone: string, digest: string, routes = 1): ZoneTable => ({
  apiVersion: 'zonegate.io/v1',
  kind: 'ZoneEgressTable',
  zone,
  digest,
  egresses: [],
  routes: Array.from({ length: routes }, (_, i) => route(`s${i}`)),
})
const published = (t: ZoneTable, generation: number, kvRevision: number) => ({
  table: { ...t, generation, revision: 'main@sha1:old' } as PublishedZoneTable,
  kvRevision,
})
const REV = 'main@sha1:new'

describe('plan', () => {
  const inventory: Inventory = new Map([
    ['zone-a', published(table('zone-a', 'da'), 3, 11)],
    ['zone-b', published(table('zone-b', 'db', 2), 1, 12)],
  ])
  const cases: [string, ZoneTable[], string[]][] = [
    ['unchanged digests plan nothing', [table('zone-a', 'da'), table('zone-b', 'db', 2)], []],
    ['a changed digest is one write', [table('zone-a', 'da2'), table('zone-b', 'db', 2)], ['zone-a changed g4 cas11']],
    [
      'new and vanished zones',
      [table('zone-a', 'da'), table('zone-c', 'dc')],
      ['zone-b removed g1 cas12', 'zone-c added g1 cas0'],
    ],
  ]
  it.each(cases)('plan - %s', (_name, next, expected) => {
    const plan = planZoneChanges(inventory, next, REV)
    expect(
      plan.map((c) =>
        c.change === 'removed'
          ? `${c.zone} removed g${c.previousGeneration} cas${c.expectedKvRevision}`
          : `${c.zone} ${c.change} g${c.table.generation} cas${c.expectedKvRevision}`,
      ),
    ).toEqual(expected)
  })

  it('plan - writes carry the revision and drop compile-time fields', () => {
    const [c] = planZoneChanges(inventory, [table('zone-a', 'x'), table('zone-b', 'db', 2)], REV)
    expect(c?.change === 'changed' && c.table).toMatchObject({ generation: 4, revision: REV, digest: 'x' })
  })

  it('plan - a zone that comes back continues its generation', () => {
    const [c] = planZoneChanges(new Map(), [table('zone-z', 'dz')], REV, new Map([['zone-z', 7]]))
    expect(c?.change === 'added' && c.table.generation).toBe(8)
  })

  it.each([
    ['a removed zone with routes', [table('zone-a', 'da')], ['zone-b:2']],
    ['a zone left with no routes', [table('zone-a', 'e', 0), table('zone-b', 'db', 2)], ['zone-a:1']],
    ['routes moving elsewhere is fine', [table('zone-a', 'e', 3), table('zone-b', 'db', 2)], []],
  ])('plan - emptied zones: %s', (_name, next, expected) => {
    expect(emptiedZones(planZoneChanges(inventory, next, REV)).map((z) => `${z.zone}:${z.routes}`)).toEqual(expected)
  })
})

describe('plan - signing', () => {
  const signer = loadSigningKey(generateSigningKey().seed)
  const other = loadSigningKey(generateSigningKey().seed)
  const signedBy = (s: TableSigner, t: ZoneTable, g: number, kvRevision: number) => {
    const p = published(t, g, kvRevision)
    return { ...p, table: signTable(p.table, s) }
  }

  it('plan - with a signer every write is signed and verifies', () => {
    const plan = planZoneChanges(new Map(), [table('zone-a', 'da'), table('zone-b', 'db')], REV, new Map(), signer)
    expect(plan).toHaveLength(2)
    for (const c of plan) {
      if (c.change === 'removed') throw new Error('unexpected removal')
      expect(c.table.signature?.key).toBe(signer.publicKey)
      expect(verifyTableSignature(c.table, [signer.publicKey])).toEqual({ ok: true, key: signer.publicKey })
    }
  })

  it.each([
    ['unsigned (signing just turned on)', (t: ZoneTable) => published(t, 3, 11), 'zone-a changed g4'],
    ['signed by another key (rotation)', (t: ZoneTable) => signedBy(other, t, 3, 11), 'zone-a changed g4'],
    ['signed by this key', (t: ZoneTable) => signedBy(signer, t, 3, 11), ''],
  ])('plan - an unchanged zone whose table in KV is %s', (_n, last, expected) => {
    const plan = planZoneChanges(
      new Map([['zone-a', last(table('zone-a', 'da'))]]),
      [table('zone-a', 'da')],
      REV,
      new Map(),
      signer,
    )
    expect(
      plan.map((c) => (c.change === 'removed' ? c.zone : `${c.zone} ${c.change} g${c.table.generation}`)).join(),
    ).toBe(expected)
  })

  it('plan - without a signer an unchanged unsigned zone is not republished', () => {
    expect(
      planZoneChanges(new Map([['zone-a', published(table('zone-a', 'da'), 3, 11)]]), [table('zone-a', 'da')], REV),
    ).toEqual([])
  })
})

describe('plan - generations', () => {
  it('plan - a lower generation in KV (written by somebody else) does not pull the next one below what we wrote', () => {
    const inv: Inventory = new Map([['zone-a', published(table('zone-a', 'forged'), 0, 20)]])
    const [c] = planZoneChanges(inv, [table('zone-a', 'da')], REV, new Map([['zone-a', 5]]))
    expect(c?.change === 'changed' && c.table.generation).toBe(6)
    expect(c?.expectedKvRevision).toBe(20)
  })
})

describe('plan - why a zone is written (issue #12: logged by the publish step)', () => {
  it('plan - missing from the inventory, another digest, another signing key: with what the inventory held', () => {
    const signer = loadSigningKey(generateSigningKey().seed)
    const inv: Inventory = new Map([
      ['zone-a', published(table('zone-a', 'da'), 3, 11)],
      ['zone-b', published(table('zone-b', 'db'), 2, 12)],
    ])
    const plan = planZoneChanges(
      inv,
      [table('zone-a', 'da2'), table('zone-b', 'db'), table('zone-c', 'dc')],
      REV,
      new Map([['zone-c', 4]]),
      signer,
    )
    expect(plan.map((c) => (c.change === 'removed' ? undefined : [c.zone, c.why]))).toEqual([
      [
        'zone-a',
        { reason: 'digest', inventory: { digest: 'da', generation: 3, revision: 'main@sha1:old', kvRevision: 11 } },
      ],
      [
        'zone-b',
        { reason: 'signature', inventory: { digest: 'db', generation: 2, revision: 'main@sha1:old', kvRevision: 12 } },
      ],
      ['zone-c', { reason: 'missing', lastGeneration: 4 }],
    ])
  })
})
