import ucs2lengthModule from 'ajv/dist/runtime/ucs2length.js'

/**
 * The routes of a table envelope checked against `zone-table.schema.json` (`routes.items`) by hand: the same
 * rules as the ajv validator (schemas/zone-table-shape.ts), decided per route without collecting errors, several
 * times faster on a 100,000-route table (docs/decisions/012-off-loop-admission.md). It only answers "valid or
 * not"; the caller asks ajv for the problems (paths and messages) of a route this refuses, so what a refused
 * table reports never depends on this file. A unit test checks that both agree on valid and invalid routes
 * (test/unit/zone-route-shape.test.ts). Pure.
 *
 * Mirrors ajv exactly: string lengths in code points (ajv's ucs2length), integers as ajv checks them, unknown
 * members seen by `for…in`, and `uniqueItems` over strings as ajv's generated code does it (which never counts a
 * repeated "__proto__" as a duplicate: its index object is a plain `{}`).
 *
 * `checkRoutes` also tells whether every object of the routes has its members in sorted order (as the reconciler
 * writes them, decision 012): `JSON.stringify` of such routes is their canonical JSON (schemas/digest.ts), with
 * no key list to pass and no walk to sort them.
 */

const ucs2length = ((m: unknown) => (typeof m === 'function' ? m : (m as { default: (s: string) => number }).default))(
  ucs2lengthModule,
) as (s: string) => number

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** `{type: string, minLength: 1, maxLength: max}` (lengths in code points, as ajv counts them). */
const str = (v: unknown, max: number): boolean =>
  typeof v === 'string' && v.length >= 1 && (v.length <= max || ucs2length(v) <= max)

const int = (v: unknown, min: number, max: number): boolean =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max

const ZONE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/u
/** `$defs/zone`: no minLength, but the pattern needs a character. */
const zone = (v: unknown): boolean => typeof v === 'string' && (v.length <= 253 || ucs2length(v) <= 253) && ZONE.test(v)

/** `$defs/pem`. */
const pem = (v: unknown): boolean =>
  typeof v === 'string' && v.length >= 1 && (v.length <= 65536 || ucs2length(v) <= 65536) && v.includes('-----BEGIN ')

/** `allow` / `deny`: at most 10,000 unique names of 1–253 characters. */
function names(v: unknown): boolean {
  if (!Array.isArray(v) || v.length > 10000) return false
  for (let i = 0; i < v.length; i++) if (!str(v[i], 253)) return false
  if (v.length > 1) {
    const seen = new Set<string>()
    for (let i = 0; i < v.length; i++) {
      const s = v[i] as string
      if (s === '__proto__') continue // ajv's `{}` index never finds it (see above)
      if (seen.has(s)) return false
      seen.add(s)
    }
  }
  return true
}

/** Cleared by the walkers below when some object's members are not in sorted order. */
let sorted = true

function routeTls(v: unknown): boolean {
  if (!isObject(v)) return false
  let prev = ''
  for (const k in v) {
    if (k !== 'enabled' && k !== 'serverName') return false
    if (k <= prev) sorted = false
    prev = k
  }
  if (typeof v.enabled !== 'boolean') return false
  return v.serverName === undefined || str(v.serverName, 253)
}

function upstreamTls(v: unknown): boolean {
  if (!isObject(v)) return false
  let prev = ''
  for (const k in v) {
    if (k <= prev) sorted = false
    prev = k
    switch (k) {
      case 'enabled':
      case 'serverName':
      case 'caCert':
      case 'clientCert':
      case 'clientKey':
      case 'allowRenegotiation':
      case 'skipHostnameVerification':
        break
      default:
        return false
    }
  }
  return (
    typeof v.enabled === 'boolean' &&
    (v.serverName === undefined || str(v.serverName, 253)) &&
    (v.caCert === undefined || pem(v.caCert)) &&
    (v.clientCert === undefined || pem(v.clientCert)) &&
    (v.clientKey === undefined || pem(v.clientKey)) &&
    (v.allowRenegotiation === undefined || typeof v.allowRenegotiation === 'boolean') &&
    (v.skipHostnameVerification === undefined || typeof v.skipHostnameVerification === 'boolean')
  )
}

function upstream(v: unknown): boolean {
  if (!isObject(v)) return false
  let prev = ''
  for (const k in v) {
    if (k <= prev) sorted = false
    prev = k
    switch (k) {
      case 'address':
      case 'port':
      case 'weight':
      case 'zone':
      case 'priority':
      case 'tls':
        break
      default:
        return false
    }
  }
  return (
    str(v.address, 253) &&
    int(v.port, 1, 65535) &&
    int(v.weight, 0, 4294967295) &&
    (v.zone === undefined || zone(v.zone)) &&
    (v.priority === undefined || int(v.priority, 0, 128)) &&
    (v.tls === undefined || upstreamTls(v.tls))
  )
}

/** True when `v` is valid as one item of the schema's `routes` array. Pure. */
export function isValidRoute(v: unknown): boolean {
  if (!isObject(v)) return false
  let prev = ''
  for (const k in v) {
    if (k <= prev) sorted = false
    prev = k
    switch (k) {
      case 'sni':
      case 'mesh':
      case 'service':
      case 'kind':
      case 'mode':
      case 'upstreams':
      case 'tls':
      case 'allow':
      case 'deny':
        break
      default:
        return false
    }
  }
  if (!str(v.sni, 4096) || !str(v.mesh, 253) || !str(v.service, 4096)) return false
  if (v.kind !== 'external' && v.kind !== 'cross-zone') return false
  if (v.mode !== 'passthrough' && v.mode !== 'terminate-mtls') return false
  const ups = v.upstreams
  if (!Array.isArray(ups) || ups.length < 1) return false
  for (let i = 0; i < ups.length; i++) if (!upstream(ups[i])) return false
  if (v.tls !== undefined && !routeTls(v.tls)) return false
  if (v.allow !== undefined && !names(v.allow)) return false
  if (v.deny !== undefined && !names(v.deny)) return false
  return true
}

/** True when every item of `routes` is a valid route. Pure. */
export function areValidRoutes(routes: readonly unknown[]): boolean {
  return checkRoutes(routes) !== 'invalid'
}

/**
 * `invalid` when some item of `routes` is not a valid route; otherwise `sorted` when every object in them has its
 * members in sorted order (UTF-16 code unit order, as `Array.prototype.sort`), else `valid`. Pure.
 */
export function checkRoutes(routes: readonly unknown[]): 'invalid' | 'valid' | 'sorted' {
  sorted = true
  for (let i = 0; i < routes.length; i++) if (!isValidRoute(routes[i])) return 'invalid'
  return sorted ? 'sorted' : 'valid'
}
