import { describe, expect, it } from 'vitest'
import {
  egressPermissions,
  inboxPrefixFor,
  permissionsFor,
  reconcilerPermissions,
  Scope,
  viewerPermissions,
} from './nats-permissions.js'

/** NATS subject matching (`*` one token, `>` the rest), as the server applies permissions. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.')
  const s = subject.split('.')
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false
  }
  return p.length === s.length
}
const allowed = (perm: { pub: string[]; pubDeny?: string[] }, subject: string) =>
  perm.pub.some((p) => matches(p, subject)) && !(perm.pubDeny ?? []).some((p) => matches(p, subject))

describe('nats-permissions', () => {
  const a = egressPermissions('zone-a')

  it('nats-permissions - an egress token reads only its zone table and writes only its own subjects', () => {
    const yes = [
      '$JS.API.DIRECT.GET.KV_zonegate-tables.$KV.zonegate-tables.zone-a.table',
      '$JS.API.CONSUMER.CREATE.KV_zonegate-tables.abc.$KV.zonegate-tables.zone-a.table',
      '$KV.zonegate-instances.zone-a.ze-a.egress=2E1',
      'zonegate.events.rollout.zone-a.applied.ze-a.i1',
      'zonegate.events.rollout.zone-a.rejected.ze-a.i1',
      'zonegate.cmd.cert.zone-a',
    ]
    const no = [
      '$JS.API.DIRECT.GET.KV_zonegate-tables.$KV.zonegate-tables.zone-b.table',
      '$JS.API.CONSUMER.CREATE.KV_zonegate-tables.abc.$KV.zonegate-tables.>',
      '$JS.API.CONSUMER.CREATE.KV_zonegate-tables.abc.$KV.zonegate-tables.zone-b.table',
      '$JS.API.CONSUMER.CREATE.KV_zonegate-tables',
      '$JS.API.STREAM.MSG.GET.KV_zonegate-tables',
      '$KV.zonegate-tables.zone-a.table',
      '$KV.zonegate-instances.zone-b.ze-b.i1',
      '$KV.zonegate-leases.reconciler',
      '$JS.API.DIRECT.GET.KV_zonegate-ca.$KV.zonegate-ca.default.ca',
      'zonegate.events.rollout.zone-b.applied.ze-b.i1',
      'zonegate.events.rollout.zone-a.converged',
      'zonegate.events.commit.abc.published',
      'zonegate.cmd.cert.zone-b',
      'zonegate.cmd.reconcile',
      '$O.zonegate-table-bodies.C.abc',
    ]
    for (const s of yes) expect(allowed(a, s), s).toBe(true)
    for (const s of no) expect(allowed(a, s), s).toBe(false)
    expect(a.sub).toEqual(['_INBOX.zone.zone-a.>'])
  })

  it('nats-permissions - a dotted zone is one token everywhere (no zone-prefix spill)', () => {
    const d = egressPermissions('eu.west-1')
    expect(allowed(d, '$KV.zonegate-instances.eu=2Ewest-1.ze.i')).toBe(true)
    expect(allowed(d, '$KV.zonegate-instances.eu.west-1')).toBe(false)
    expect(inboxPrefixFor(Scope.Egress, 'eu.west-1')).toBe('_INBOX.zone.eu=2Ewest-1')
  })

  it('nats-permissions - a viewer reads streams but never the CA bucket and writes nothing', () => {
    const v = viewerPermissions()
    for (const s of [
      '$JS.API.STREAM.INFO.ZONEGATE_EVENTS',
      '$JS.API.CONSUMER.CREATE.ZONEGATE_EVENTS.x.zonegate.events.>',
      '$JS.API.DIRECT.GET.KV_zonegate-status.$KV.zonegate-status.reconciler',
      '$JS.API.CONSUMER.MSG.NEXT.KV_zonegate-instances.c1',
    ])
      expect(allowed(v, s), s).toBe(true)
    for (const s of [
      '$JS.API.DIRECT.GET.KV_zonegate-ca.$KV.zonegate-ca.default.ca',
      '$JS.API.DIRECT.GET.KV_zonegate-ca',
      '$JS.API.STREAM.MSG.GET.KV_zonegate-ca',
      '$JS.API.CONSUMER.CREATE.KV_zonegate-ca',
      '$JS.API.CONSUMER.CREATE.KV_zonegate-ca.x.$KV.zonegate-ca.>',
      '$JS.API.CONSUMER.MSG.NEXT.KV_zonegate-ca.c1',
      '$JS.API.STREAM.DELETE.ZONEGATE_EVENTS',
      '$JS.API.STREAM.PURGE.KV_zonegate-tables',
      '$JS.API.CONSUMER.DURABLE.CREATE.ZONEGATE_EVENTS.d',
      '$KV.zonegate-tables.zone-a.table',
      '$KV.zonegate-leases.reconciler',
      'zonegate.events.commit.abc.published',
      'zonegate.cmd.reconcile',
    ])
      expect(allowed(v, s), s).toBe(false)
    expect(v.sub).toEqual(['_INBOX.viewer.>'])
  })

  it('nats-permissions - the reconciler writes tables, the lease and the CA bucket', () => {
    const r = reconcilerPermissions()
    for (const s of [
      '$KV.zonegate-tables.zone-a.table',
      '$KV.zonegate-leases.reconciler',
      '$KV.zonegate-ca.default.ca',
      '$O.zonegate-table-bodies.C.x',
      '$JS.API.STREAM.CREATE.KV_zonegate-tables',
      'zonegate.events.commit.abc.published',
      '_INBOX.zone.zone-a.abc.1',
    ])
      expect(allowed(r, s), s).toBe(true)
    expect(r.sub).toContain('zonegate.cmd.cert.*')
  })

  it('nats-permissions - an egress token needs a zone', () => {
    expect(() => permissionsFor(Scope.Egress)).toThrow(/needs a zone/)
    expect(permissionsFor(Scope.Viewer)).toEqual(viewerPermissions())
  })
})
