import {
  Bucket,
  CERT_SUBJECTS,
  certSubject,
  RECONCILE_SUBJECT,
  TABLE_BODIES_BUCKET,
  tableKey,
  zoneToken,
} from './subjects.js'

/**
 * What each kind of zonegate token may do on NATS (docs/security.md), built from the names of subjects.ts only,
 * so a renamed bucket or subject changes the permissions with it. Pure. The lists are allow lists: anything
 * not listed is refused by the server (nats-server 2.9 user permissions, carried in the user JWT).
 *
 * - `egress` (one zone): read the zone's table key (direct get + one-key watch; the consumer-create API subject
 *   carries the filter since 2.9, so the watch is scoped), read large-table bodies, write only its own
 *   heartbeats (`$KV.zonegate-instances.<zone>.>`), publish only its own `applied`/`rejected` rollout events,
 *   request certificates only for its zone; subscribe only to its own inbox prefix.
 * - `reconciler`: everything the control plane does (buckets incl. the lease and the CA keys, the object
 *   store, the events stream, answering `zonegate.cmd.*`).
 * - `viewer`: `status`, `rollout watch`, `events`: read the tables, instances, lease, status and events; no
 *   publish outside the JetStream read APIs; never the CA bucket (it holds CA private keys).
 */

export const Scope = { Egress: 'egress', Reconciler: 'reconciler', Viewer: 'viewer' } as const
export type Scope = (typeof Scope)[keyof typeof Scope]
export const SCOPES: readonly Scope[] = [Scope.Egress, Scope.Reconciler, Scope.Viewer]

export interface NatsPermissions {
  pub: string[]
  /** Refused even when `pub` allows it. */
  pubDeny?: string[]
  sub: string[]
}

/** The stream behind a KV bucket / an object store. */
export const kvStream = (bucket: string) => `KV_${bucket}`
export const objStream = (bucket: string) => `OBJ_${bucket}`

/** The inbox prefix of a token (the client must connect with it: `inboxPrefix`). Pure. */
export function inboxPrefixFor(scope: Scope, zone?: string): string {
  if (scope === Scope.Egress) {
    if (zone === undefined) throw new Error('an egress token needs a zone')
    return `_INBOX.zone.${zoneToken(zone)}`
  }
  return `_INBOX.${scope}`
}

/** The permissions of an egress token of `zone`. Pure. */
export function egressPermissions(zone: string): NatsPermissions {
  const z = zoneToken(zone)
  const tables = kvStream(Bucket.Tables)
  const bodies = objStream(TABLE_BODIES_BUCKET)
  const tableSubject = `$KV.${Bucket.Tables}.${tableKey(zone)}`
  return {
    pub: [
      '$JS.API.INFO',
      // the zone's table: stream info (bucket recreated?), direct get of the one key, a watch filtered on it
      `$JS.API.STREAM.INFO.${tables}`,
      `$JS.API.DIRECT.GET.${tables}.${tableSubject}`,
      `$JS.API.CONSUMER.CREATE.${tables}.*.${tableSubject}`,
      `$JS.API.CONSUMER.INFO.${tables}.*`,
      `$JS.API.CONSUMER.DELETE.${tables}.*`,
      `$JS.FC.${tables}.>`,
      // large tables: the body named by the zone's head (object names are one base64 token: not scopable)
      `$JS.API.STREAM.INFO.${bodies}`,
      `$JS.API.STREAM.MSG.GET.${bodies}`,
      `$JS.API.CONSUMER.CREATE.${bodies}.*.$O.${TABLE_BODIES_BUCKET}.C.*`,
      `$JS.API.CONSUMER.INFO.${bodies}.*`,
      `$JS.API.CONSUMER.DELETE.${bodies}.*`,
      `$JS.FC.${bodies}.>`,
      // its own heartbeats, rollout events and certificate requests
      `$KV.${Bucket.Instances}.${z}.>`,
      `zonegate.events.rollout.${z}.applied.>`,
      `zonegate.events.rollout.${z}.rejected.>`,
      certSubject(zone),
    ],
    sub: [`${inboxPrefixFor(Scope.Egress, zone)}.>`],
  }
}

/** The permissions of the reconciler. Pure. */
export function reconcilerPermissions(): NatsPermissions {
  return {
    pub: [
      '$JS.API.>',
      '$JS.ACK.>',
      '$JS.FC.>',
      ...Object.values(Bucket).map((b) => `$KV.${b}.>`),
      `$O.${TABLE_BODIES_BUCKET}.>`,
      'zonegate.events.>',
      'zonegate.cmd.>',
      // replies to certificate and reconcile requests go to the requester's inbox
      '_INBOX.>',
    ],
    sub: [`${inboxPrefixFor(Scope.Reconciler)}.>`, CERT_SUBJECTS, RECONCILE_SUBJECT, 'zonegate.events.>'],
  }
}

/**
 * The JetStream API subjects that name `stream` (every position a stream name takes: `STREAM.INFO.<s>`,
 * `DIRECT.GET.<s>[.<subject>]`, `CONSUMER.CREATE.<s>[.…]`, `STREAM.MSG.GET.<s>`, `CONSUMER.MSG.NEXT.<s>.<c>`). Pure.
 */
export function streamApiSubjects(stream: string): string[] {
  return [`$JS.API.*.*.${stream}`, `$JS.API.*.*.${stream}.>`, `$JS.API.*.*.*.${stream}`, `$JS.API.*.*.*.${stream}.>`]
}

/**
 * The permissions of a viewer (read-only: status, rollout watch, events). JetStream read APIs on every stream
 * (wildcards keep the JWT small: a CONNECT line must stay under nats-server's 4 KiB `max_control_line`) except
 * the CA bucket's stream, denied in every API position. No publish anywhere else. Pure.
 */
export function viewerPermissions(): NatsPermissions {
  return {
    pub: [
      '$JS.API.INFO',
      '$JS.API.STREAM.INFO.*',
      '$JS.API.STREAM.MSG.GET.*',
      '$JS.API.DIRECT.GET.>',
      '$JS.API.CONSUMER.CREATE.>',
      '$JS.API.CONSUMER.INFO.*.*',
      '$JS.API.CONSUMER.DELETE.*.*',
      '$JS.API.CONSUMER.MSG.NEXT.*.*',
      '$JS.FC.>',
    ],
    pubDeny: streamApiSubjects(kvStream(Bucket.Ca)),
    sub: [`${inboxPrefixFor(Scope.Viewer)}.>`],
  }
}

/** The permissions of a scope (`zone` required for `egress`). Pure; throws on a missing zone. */
export function permissionsFor(scope: Scope, zone?: string): NatsPermissions {
  if (scope === Scope.Egress) {
    if (zone === undefined) throw new Error('an egress token needs a zone')
    return egressPermissions(zone)
  }
  return scope === Scope.Reconciler ? reconcilerPermissions() : viewerPermissions()
}
