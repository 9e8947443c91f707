import { SERVICE_TAG, type Tags } from '../../schemas/resources.js'

/**
 * SNI formats: the one place that turns a destination (mesh, service, extra tags) into the TLS server name an
 * egress matches, and back. Today only Kuma's legacy tag SNI (kuma-model.md §6.1, `pkg/xds/envoy/tls/sni.go`);
 * see docs/decisions/001-sni-format.md for why, and for how a hashed or KRI format would plug in.
 */

/** A destination as the compiler sees it: one (mesh, service) plus optional subset tags. */
export interface SniDestination {
  mesh: string
  /** The `kuma.io/service` tag value (never the resource name). */
  service: string
  /** Extra tags (subset routing); `kuma.io/service` and `mesh` in here are ignored. */
  tags?: Tags
}

/** A pluggable SNI format. `build` is total for valid resources; `parse` throws SniParseError. */
export interface SniFormat {
  readonly name: string
  build(destination: SniDestination): string
  parse(sni: string): SniDestination
}

/** A malformed SNI. `code` is stable. */
export class SniParseError extends Error {
  readonly code = 'SniParseError'

  constructor(
    readonly sni: string,
    readonly reason: string,
  ) {
    super(`cannot parse tags from sni "${sni}": ${reason}`)
    this.name = 'SniParseError'
  }
}

const bytewise = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Kuma's `SNIFromTags`: `<service>` when there are no other tags, else `<service>{k1=v1,k2=v2}` with the keys
 * (all but `kuma.io/service`) sorted bytewise, pairs joined by `,`, no spaces. Pure.
 */
export function sniFromTags(tags: Tags): string {
  const service = tags[SERVICE_TAG] ?? ''
  const pairs = Object.keys(tags)
    .filter((k) => k !== SERVICE_TAG)
    .sort(bytewise)
    .map((k) => `${k}=${tags[k]}`)
  return pairs.length === 0 ? service : `${service}{${pairs.join(',')}}`
}

/**
 * Kuma's `TagsFromSNI`: splits on `{` (more than one `{` is an error), drops `}`, splits pairs on `,`; each pair
 * needs exactly one `=`. Returns the tags with `kuma.io/service` set to the part before `{`. Throws
 * SniParseError. Pure.
 */
export function tagsFromSni(sni: string): Tags {
  const parts = sni.split('{')
  if (parts.length > 2) throw new SniParseError(sni, 'more than one "{"')
  const service = parts[0] as string
  if (parts.length === 1) return { [SERVICE_TAG]: service }
  const body = (parts[1] as string).replaceAll('}', '')
  const tags: Tags = {}
  if (body !== '') {
    for (const pair of body.split(',')) {
      const kv = pair.split('=')
      if (kv.length !== 2) throw new SniParseError(sni, `pair "${pair}" needs exactly one "="`)
      // defineProperty, not assignment: a tag key `__proto__` must become a key, not the object's prototype
      Object.defineProperty(tags, kv[0] as string, {
        value: kv[1],
        enumerable: true,
        writable: true,
        configurable: true,
      })
    }
  }
  tags[SERVICE_TAG] = service
  return tags
}

/**
 * The legacy tag SNI of zone proxies: `<service>{mesh=<mesh>}`, extra tags merged in and sorted bytewise
 * (`backend{app=backend-app,env=prod,mesh=default,version=v1}`; `kuma.io/zone` sorts before `mesh`). The `mesh`
 * tag is always the destination's mesh.
 */
export const legacyTagSni: SniFormat = {
  name: 'legacy-tag',
  build({ mesh, service, tags }) {
    return sniFromTags({ ...tags, [SERVICE_TAG]: service, mesh })
  },
  parse(sni) {
    const tags = tagsFromSni(sni)
    const { [SERVICE_TAG]: service, mesh, ...rest } = tags
    if (mesh === undefined) throw new SniParseError(sni, 'no mesh tag')
    return { service: service ?? '', mesh, ...(Object.keys(rest).length > 0 ? { tags: rest } : {}) }
  },
}

/** The format the compiler uses. Swap here (or pass one to `compileZoneTables`) to change every table. */
export const defaultSniFormat: SniFormat = legacyTagSni

/** `<service>{mesh=<mesh>}` with the default format. Pure. */
export function meshServiceSni(mesh: string, service: string, tags?: Tags): string {
  return defaultSniFormat.build({ mesh, service, tags })
}
