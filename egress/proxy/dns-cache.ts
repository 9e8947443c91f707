import { type LookupAddress, type LookupAllOptions, lookup as systemLookup } from 'node:dns'

/**
 * Upstream host names resolved once per `ttlMs` instead of once per connection. Without it every connection to
 * an ExternalService given by name waits for a `getaddrinfo` in libuv's thread pool (4 threads by default, shared
 * with file I/O and crypto), which under load queues behind the others.
 *
 * The answers come from the same resolver as Node's default (`dns.lookup`: /etc/hosts, nsswitch, the system's
 * DNS), which gives no TTL, so an answer is kept for a fixed time (`--dns-ttl`, default 10 s; Envoy re-resolves
 * STRICT_DNS clusters every 5 s). A failed lookup is kept for at most 1 s, so a name that comes back is retried
 * soon. Lookups of one name in flight at once are shared. At most `maxNames` names are kept (the oldest answer
 * is dropped first), so a table of many names cannot grow the cache without bound.
 *
 * `lookup` has the signature `net.connect`'s `lookup` option expects, `all: true` (Happy Eyeballs) included.
 */

type Resolve = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void

type Callback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void

interface Entry {
  /** performance.now() ms after which the answer is looked up again */
  until: number
  addresses?: LookupAddress[]
  error?: NodeJS.ErrnoException
  waiting?: { family: number; all: boolean; cb: Callback }[]
}

export const DEFAULT_DNS_TTL_MS = 10_000
const NEGATIVE_TTL_MS = 1000

export class DnsCache {
  private readonly names = new Map<string, Entry>()
  /** Lookups answered from the cache / sent to the resolver. */
  hits = 0
  misses = 0

  constructor(
    private readonly ttlMs: number,
    private readonly maxNames = 4096,
    private readonly now: () => number = () => performance.now(),
    private readonly resolve: Resolve = systemLookup as unknown as Resolve,
  ) {}

  /** `net.connect({ lookup })`: answers from the cache, else resolves once for every caller waiting. */
  readonly lookup = (hostname: string, options: { family?: number | string; all?: boolean }, cb: Callback): void => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : Number(options.family ?? 0)
    const all = options.all === true
    let e = this.names.get(hostname)
    if (e !== undefined && e.waiting === undefined && this.now() >= e.until) {
      this.names.delete(hostname)
      e = undefined
    }
    if (e === undefined) {
      this.misses++
      const entry: Entry = { until: Number.POSITIVE_INFINITY, waiting: [{ family, all, cb }] }
      this.names.set(hostname, entry)
      this.evict()
      this.resolve(hostname, { all: true }, (err, addresses) => {
        const waiting = entry.waiting ?? []
        entry.waiting = undefined
        if (err || addresses.length === 0) {
          entry.error = err ?? Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' })
          entry.until = this.now() + Math.min(NEGATIVE_TTL_MS, this.ttlMs)
        } else {
          entry.addresses = addresses
          entry.until = this.now() + this.ttlMs
        }
        for (const w of waiting) answer(entry, hostname, w.family, w.all, w.cb)
      })
      return
    }
    if (e.waiting !== undefined) {
      e.waiting.push({ family, all, cb })
      return
    }
    this.hits++
    // the callback of a lookup is never called synchronously (net.connect relies on that, as dns.lookup does)
    process.nextTick(answer, e, hostname, family, all, cb)
  }

  private evict(): void {
    // Map keeps insertion order: the first names are the oldest answers
    for (const name of this.names.keys()) {
      if (this.names.size <= this.maxNames) return
      if (this.names.get(name)?.waiting === undefined) this.names.delete(name)
    }
  }
}

function answer(e: Entry, hostname: string, family: number, all: boolean, cb: Callback): void {
  if (e.error !== undefined) {
    cb(e.error, all ? [] : '', undefined)
    return
  }
  const list = family === 0 ? e.addresses! : e.addresses!.filter((a) => a.family === family)
  if (list.length === 0) {
    const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
      code: 'ENOTFOUND',
      hostname,
    }) as NodeJS.ErrnoException
    cb(err, all ? [] : '', undefined)
    return
  }
  if (all) cb(null, list)
  else cb(null, list[0]!.address, list[0]!.family)
}
