import { describe, expect, it } from 'vitest'
import {
  certSubject,
  instanceKey,
  instanceKeyPrefix,
  rolloutInstanceSubject,
  rolloutSubject,
  rolloutSubjects,
  tableKey,
  zoneOfToken,
  zoneToken,
} from './subjects.js'
import { validateZoneTableShape } from './validators.js'

/**
 * Dotted zone names (Kuma accepts `eu.west-1`: `pkg/core/resources/apis/mesh/meta_validator.go` checks resource
 * names as RFC 1123 subdomains) are encoded wherever a zone becomes a NATS subject token or KV key; names without
 * dots keep today's keys and subjects (decision 014).
 */
const cases: { fn: string; got: (z: string) => string; plain: string; dotted: string }[] = [
  { fn: 'tableKey', got: tableKey, plain: 'zone-a.table', dotted: 'eu=2Ewest-1.table' },
  {
    fn: 'instanceKey',
    got: (z) => instanceKey(z, 'ze.1', 'i-1'),
    plain: 'zone-a.ze=2E1.i-1',
    dotted: 'eu=2Ewest-1.ze=2E1.i-1',
  },
  { fn: 'instanceKeyPrefix', got: instanceKeyPrefix, plain: 'zone-a.>', dotted: 'eu=2Ewest-1.>' },
  { fn: 'certSubject', got: certSubject, plain: 'zonegate.cmd.cert.zone-a', dotted: 'zonegate.cmd.cert.eu=2Ewest-1' },
  {
    fn: 'rolloutSubject',
    got: (z) => rolloutSubject(z, 'published'),
    plain: 'zonegate.events.rollout.zone-a.published',
    dotted: 'zonegate.events.rollout.eu=2Ewest-1.published',
  },
  {
    fn: 'rolloutInstanceSubject',
    got: (z) => rolloutInstanceSubject(z, 'applied', 'ze', 'i'),
    plain: 'zonegate.events.rollout.zone-a.applied.ze.i',
    dotted: 'zonegate.events.rollout.eu=2Ewest-1.applied.ze.i',
  },
  {
    fn: 'rolloutSubjects',
    got: rolloutSubjects,
    plain: 'zonegate.events.rollout.zone-a.>',
    dotted: 'zonegate.events.rollout.eu=2Ewest-1.>',
  },
]

describe('subjects', () => {
  for (const c of cases) {
    it(`subjects - ${c.fn} keeps a zone without dots unchanged`, () => expect(c.got('zone-a')).toBe(c.plain))
    it(`subjects - ${c.fn} encodes a dotted zone into one token`, () => expect(c.got('eu.west-1')).toBe(c.dotted))
  }
  it('subjects - every zone token decodes back to the zone', () => {
    for (const z of ['zone-a', 'eu.west-1', 'a.b.c', '0'.repeat(63)]) {
      expect(zoneToken(z)).not.toContain('.')
      expect(zoneOfToken(zoneToken(z))).toBe(z)
    }
  })
  it('subjects - rolloutSubjects keeps the * wildcard', () =>
    expect(rolloutSubjects()).toBe('zonegate.events.rollout.*.>'))

  const table = (zone: string) => ({
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    zone,
    digest: `sha256:${'0'.repeat(64)}`,
    egresses: [],
    routes: [],
  })
  it('subjects - the table schema accepts a dotted zone', () =>
    expect(validateZoneTableShape(table('eu.west-1'))).toEqual([]))
  it('subjects - the table schema still refuses a zone with upper case or _', () =>
    expect(validateZoneTableShape(table('EU_west')).length).toBeGreaterThan(0))
})
