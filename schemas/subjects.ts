/**
 * Every NATS name zonegate uses (docs/design.md §3, docs/decisions/002-nats-subjects-and-keys.md), built by
 * functions so no subject string is written twice.
 * Zone, egress and instance names are single subject tokens, encoded with `encodeToken` (`zoneToken`): names
 * without dots (every zone name before dotted zones were accepted) keep their keys and subjects; a dotted zone
 * such as `eu.west-1` becomes `eu=2Ewest-1` (docs/decisions/014-dotted-zone-names.md).
 */

export const Bucket = {
  Tables: 'zonegate-tables',
  Instances: 'zonegate-instances',
  Leases: 'zonegate-leases',
  Status: 'zonegate-status',
  /** Mesh CA keys of `builtin` backends, key `<mesh>.<backend>` (tokens encoded). Reconciler-only. */
  Ca: 'zonegate-ca',
} as const

/**
 * JetStream object store holding the gzip bodies of tables too large for one NATS message (KV key `<zone>.table`
 * then holds a head naming the object; schemas/table-transport.ts). Objects: `<zone>.table.<generation>`.
 */
export const TABLE_BODIES_BUCKET = 'zonegate-table-bodies'
export const tableObjectName = (zone: string, generation: number) => `${zone}.table.${generation}`
/** How many generations of bodies a zone keeps in the object store (the current one and older ones). */
export const TABLE_BODIES_KEPT = 3

export const EVENTS_STREAM = 'ZONEGATE_EVENTS'
export const EVENTS_SUBJECTS = 'zonegate.events.>'
export const RECONCILE_SUBJECT = 'zonegate.cmd.reconcile'
/** Request/reply: an egress of `zone` asks for its mesh identity certificate (schemas/certs.ts). */
export const certSubject = (zone: string) => `zonegate.cmd.cert.${zoneToken(zone)}`
/** What the reconciler subscribes to (queue group `CERT_QUEUE`) to answer every zone's certificate requests. */
export const CERT_SUBJECTS = 'zonegate.cmd.cert.*'
export const CERT_QUEUE = 'zonegate-reconciler'
/** Key of a builtin CA in bucket `zonegate-ca`. */
export const caKey = (mesh: string, backend: string) => `${encodeToken(mesh)}.${encodeToken(backend)}`
export const LEASE_KEY = 'reconciler'
export const STATUS_KEY = 'reconciler'

/** Characters allowed in a subject token by zonegate (KV keys allow `[-/=.\w]`; we exclude `.`). */
const TOKEN_SAFE = /^[A-Za-z0-9_=-]+$/

/**
 * Encodes a name into one subject/KV-key token: safe names pass unchanged, others have each unsafe byte
 * written as `=XX` (hex) — `ze.a` becomes `ze=2Ea`. Pure and reversible with `decodeToken`.
 */
export function encodeToken(name: string): string {
  if (TOKEN_SAFE.test(name) && !name.includes('=')) return name
  let out = ''
  for (const byte of Buffer.from(name, 'utf8')) {
    const ch = String.fromCharCode(byte)
    out += /[A-Za-z0-9_-]/.test(ch) ? ch : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** Inverse of `encodeToken`. */
export function decodeToken(token: string): string {
  if (!token.includes('=')) return token
  const bytes: number[] = []
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '=' && i + 2 < token.length && /^[0-9A-F]{2}$/.test(token.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16))
      i += 2
    } else bytes.push(token.charCodeAt(i))
  }
  return Buffer.from(bytes).toString('utf8')
}

/**
 * A zone as one subject token / KV key token. Zone names are RFC 1123 subdomains (Kuma accepts `eu.west-1`); a
 * dot would split the token, so the name goes through `encodeToken`: names without dots are unchanged. Pure.
 */
export const zoneToken = (zone: string) => encodeToken(zone)
/** Inverse of `zoneToken` (a zone read back from a key or subject). */
export const zoneOfToken = (token: string) => decodeToken(token)

export const tableKey = (zone: string) => `${zoneToken(zone)}.table`
export const instanceKey = (zone: string, egress: string, instance: string) =>
  `${zoneToken(zone)}.${encodeToken(egress)}.${encodeToken(instance)}`
export const instanceKeyPrefix = (zone: string) => `${zoneToken(zone)}.>`

export const commitSubject = (sha: string, phase: string) => `zonegate.events.commit.${sha}.${phase}`
export const commitSubjects = (sha: string) => `zonegate.events.commit.${sha}.>`
export const rolloutSubject = (zone: string, phase: string) => `zonegate.events.rollout.${zoneToken(zone)}.${phase}`
export const rolloutInstanceSubject = (
  zone: string,
  outcome: 'applied' | 'rejected',
  egress: string,
  instance: string,
) => `zonegate.events.rollout.${zoneToken(zone)}.${outcome}.${encodeToken(egress)}.${encodeToken(instance)}`
/** All rollout events of one zone, or of every zone with `*`. */
export const rolloutSubjects = (zone = '*') => `zonegate.events.rollout.${zone === '*' ? '*' : zoneToken(zone)}.>`

/**
 * `Nats-Msg-Id` of an event: `<sha>:<zone or ->:<instance or ->:<phase>:<publication>` (the id of docs/design.md
 * §3 plus a fifth part, so each publication of a commit has its own ids and a commit published again within the
 * stream's 2-minute duplicate window, e.g. after a force-push back to it, is not dropped as a duplicate):
 * `g<generation>` for zone and instance events (the zone's generation), `g<highest generation>` for the commit
 * events of a publication, `p<pass start, ms>` for the commit events of a pass before it publishes.
 * A retry of the same event reuses its id and is still stored once.
 */
export const eventMsgId = (
  sha: string,
  zone: string | undefined,
  instance: string | undefined,
  phase: string,
  publication?: string,
) => `${sha}:${zone ?? '-'}:${instance ?? '-'}:${phase}${publication === undefined ? '' : `:${publication}`}`

/** The publication part of a msg id for a generation: `g<n>`. Pure. */
export const generationPart = (generation: number | undefined) =>
  generation === undefined ? undefined : `g${generation}`

/** Stream and bucket settings of docs/design.md §3, shared by whoever creates them first. */
export const EVENTS_MAX_AGE_NS = 7 * 24 * 3600 * 1e9
export const EVENTS_DUPLICATE_WINDOW_NS = 2 * 60 * 1e9
export const TABLES_HISTORY = 10
export const INSTANCES_TTL_MS = 30_000
export const LEASES_TTL_MS = 15_000
export const HEARTBEAT_INTERVAL_MS = 10_000

/**
 * An instance whose last heartbeat is older than this many of its heartbeat periods is `unknown` (killed, hung
 * or cut off): `zonegate status` says so and rollouts do not wait for it (docs/reconciler.md "Rollouts").
 */
export const UNKNOWN_AFTER_PERIODS = 2

/** How long after its last heartbeat an instance becomes `unknown`: two of its periods (default 10 s each). Pure. */
export const unknownAfterMs = (heartbeatMs: number | undefined) =>
  UNKNOWN_AFTER_PERIODS * (typeof heartbeatMs === 'number' && heartbeatMs > 0 ? heartbeatMs : HEARTBEAT_INTERVAL_MS)

/** Default NATS URL when neither `--nats` nor `$NATS_URL` is given. */
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222'
