/**
 * Address helpers with Go's and govalidator's semantics, as Kuma's validators use them
 * (docs/validation.md). Pure; no DNS or socket access.
 */

const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

export const isIPv4 = (s: string): boolean => IPV4.test(s)

/** Go's net.ParseIP for IPv6 (no zone): hex groups, one `::`, optional trailing IPv4. */
export function isIPv6(s: string): boolean {
  if (!s.includes(':')) return false
  const halves = s.split('::')
  if (halves.length > 2) return false
  const groups = (p: string) => (p === '' ? [] : p.split(':'))
  const all = [...groups(halves[0]!), ...(halves.length === 2 ? groups(halves[1]!) : [])]
  let count = 0
  for (let i = 0; i < all.length; i++) {
    const g = all[i]!
    if (i === all.length - 1 && g.includes('.')) {
      if (!isIPv4(g)) return false
      count += 2
    } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) count++
    else return false
  }
  return halves.length === 2 ? count <= 7 : count === 8
}

export const isIP = (s: string): boolean => isIPv4(s) || isIPv6(s)

const DNS_NAME = /^(?:[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})(?:\.[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})*[._]?$/

/** govalidator.IsDNSName: labels of `[A-Za-z0-9_-]` up to 63, optional trailing dot, not an IP. */
export function isDNSName(s: string): boolean {
  if (s === '' || s.replace(/\./g, '').length > 255) return false
  return !isIP(s) && DNS_NAME.test(s)
}

/** Go's net.SplitHostPort; `undefined` when it fails (missing port, too many colons, brackets). */
export function splitHostPort(hostport: string): { host: string; port: string } | undefined {
  const i = hostport.lastIndexOf(':')
  if (i < 0) return undefined
  let host: string
  let j = 0
  let k = 0
  if (hostport[0] === '[') {
    const end = hostport.indexOf(']')
    if (end < 0) return undefined
    if (end + 1 === hostport.length || end + 1 !== i) return undefined
    host = hostport.slice(1, end)
    j = 1
    k = end + 1
  } else {
    host = hostport.slice(0, i)
    if (host.includes(':')) return undefined
  }
  if (hostport.slice(j).includes('[')) return undefined
  if (hostport.slice(k).includes(']')) return undefined
  return { host, port: hostport.slice(i + 1) }
}

/** Go's strconv.ParseUint(s, 10, 32) mapped as Kuma uses it: undefined on a syntax or range error. */
export function parseUint32(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined
  const n = Number(s)
  return n <= 0xffffffff ? n : undefined
}

/** govalidator.IsDialString: `host:port` with a DNS name or IP host and IsPort (strconv.Atoi: sign allowed, 1..65535). */
export function isDialString(s: string): boolean {
  const hp = splitHostPort(s)
  if (!hp || hp.host === '' || hp.port === '') return false
  const port = /^[-+]?\d+$/.test(hp.port) ? Number(hp.port) : Number.NaN
  return (isDNSName(hp.host) || isIP(hp.host)) && port >= 1 && port <= 65535
}

/** The 16 bytes of an IP (IPv4 as IPv4-mapped IPv6), as Go's net.ParseIP; undefined when not an IP. */
export function ipBytes(address: string): number[] | undefined {
  if (isIPv4(address)) return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...address.split('.').map(Number)]
  if (!isIPv6(address)) return undefined
  const [head = '', tail] = address.split('::')
  const words = (p: string): number[] => {
    const out: number[] = []
    for (const g of p === '' ? [] : p.split(':')) {
      if (g.includes('.')) {
        const b = g.split('.').map(Number) as [number, number, number, number]
        out.push((b[0] << 8) | b[1], (b[2] << 8) | b[3])
      } else out.push(Number.parseInt(g, 16))
    }
    return out
  }
  const a = words(head)
  const b = tail === undefined ? [] : words(tail)
  const all = [...a, ...Array<number>(8 - a.length - b.length).fill(0), ...b]
  return all.flatMap((w) => [w >> 8, w & 0xff])
}

const LOOPBACK = ipBytes('127.0.0.1') as number[]

/**
 * Kuma's overlap(address, 127.0.0.1) with Go's net.IP.Equal: the address equals 127.0.0.1 in any form (IPv4-mapped
 * IPv6 `::ffff:127.0.0.1`, `::ffff:7f00:1`, `0:0:0:0:0:ffff:127.0.0.1`) or is unspecified (0.0.0.0, ::, and their
 * IPv4-mapped forms).
 */
export function overlapsLoopback(address: string | undefined): boolean {
  if (!address) return false
  const ip = ipBytes(address.toLowerCase())
  if (!ip) return false
  if (ip.every((v, i) => v === LOOPBACK[i])) return true
  const mapped = ip.slice(0, 10).every((v) => v === 0) && ip[10] === 0xff && ip[11] === 0xff
  return ip.every((v) => v === 0) || (mapped && ip.slice(12).every((v) => v === 0))
}

/** The parts of a URL that Go's url.ParseRequestURI yields and Kuma reads. */
export interface RequestURI {
  scheme: string
  /** The authority's host with its port (`host:port`, `[v6]:port`), unescaped; `''` for opaque or path-only URLs. */
  host: string
}

const HEX = /^[0-9a-fA-F]$/
// Go's shouldEscape(c, encodeHost) for ASCII: what a host may hold unescaped.
const HOST_OK = /^[A-Za-z0-9\-_.~!$&'()*+,;=:[\]<>"]$/
// Go's validUserinfo.
const USERINFO = /^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/

type Mode = 'host' | 'zone' | 'other'

/** Go's url.unescape, as a validity check only: `%` must start two hex digits; hosts allow only some ASCII. */
function unescapeOk(s: string, mode: Mode): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!
    if (c === '%') {
      if (i + 2 >= s.length || !HEX.test(s[i + 1]!) || !HEX.test(s[i + 2]!)) return false
      const v = Number.parseInt(s.slice(i + 1, i + 3), 16)
      if (mode === 'host' && v < 0x80 && s.slice(i, i + 3) !== '%25') return false
      // a zone may escape only what a host may hold (and the space Windows puts there)
      if (
        mode === 'zone' &&
        s.slice(i, i + 3) !== '%25' &&
        v !== 0x20 &&
        (v >= 0x80 || !HOST_OK.test(String.fromCharCode(v)))
      )
        return false
      i += 2
    } else if ((mode === 'host' || mode === 'zone') && c.charCodeAt(0) < 0x80 && !HOST_OK.test(c)) return false
  }
  return true
}

const unescapeHost = (s: string): string =>
  s.replace(/%([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)))

/** Go's validOptionalPort: empty, or `:` followed by digits only. */
const validOptionalPort = (p: string): boolean => p === '' || /^:\d*$/.test(p)

/** Go's parseHost (Go 1.25.2 and later: a bracketed host must be an IPv6 address, or carry a `%25` zone). */
function parseHost(host: string): string | undefined {
  if (host.startsWith('[')) {
    const i = host.lastIndexOf(']')
    if (i < 0) return undefined
    const colonPort = host.slice(i + 1)
    if (!validOptionalPort(colonPort)) return undefined
    const zone = host.slice(0, i).indexOf('%25')
    if (zone >= 0) {
      if (!unescapeOk(host.slice(0, zone), 'host') || !unescapeOk(host.slice(zone, i), 'zone')) return undefined
      if (!unescapeOk(host.slice(i), 'host')) return undefined
      return unescapeHost(host)
    }
    const name = host.slice(1, i)
    if (!unescapeOk(name, 'host')) return undefined
    if (!isIPv6(unescapeHost(name))) return undefined
    return unescapeHost(host)
  }
  const i = host.lastIndexOf(':')
  if (i >= 0 && !validOptionalPort(host.slice(i))) return undefined
  return unescapeOk(host, 'host') ? unescapeHost(host) : undefined
}

/**
 * Go's url.ParseRequestURI (net/url, the request form: no fragment split, no relative references). `undefined`
 * where Go returns an error. Only what Kuma reads is kept.
 */
export function parseRequestURI(raw: string): RequestURI | undefined {
  // stringContainsCTLByte
  if (/[\x00-\x1f\x7f]/.test(raw)) return undefined
  if (raw === '') return undefined
  if (raw === '*') return { scheme: '', host: '' }
  // getScheme
  let scheme = ''
  let rest = raw
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!
    if (/[A-Za-z]/.test(c)) continue
    if (/[0-9+.-]/.test(c)) {
      if (i === 0) break
      continue
    }
    if (c === ':') {
      if (i === 0) return undefined // missing protocol scheme
      scheme = raw.slice(0, i).toLowerCase()
      rest = raw.slice(i + 1)
    }
    break
  }
  if (rest.endsWith('?') && rest.split('?').length === 2) rest = rest.slice(0, -1)
  else {
    const q = rest.indexOf('?')
    if (q >= 0) rest = rest.slice(0, q)
  }
  if (!rest.startsWith('/')) {
    if (scheme !== '') return { scheme, host: '' } // opaque
    return undefined // invalid URI for request
  }
  let host = ''
  if (scheme !== '' && rest.startsWith('//')) {
    let authority = rest.slice(2)
    const slash = authority.indexOf('/')
    rest = slash >= 0 ? authority.slice(slash) : ''
    if (slash >= 0) authority = authority.slice(0, slash)
    const at = authority.lastIndexOf('@')
    const parsed = parseHost(at < 0 ? authority : authority.slice(at + 1))
    if (parsed === undefined) return undefined
    if (at >= 0) {
      const userinfo = authority.slice(0, at)
      if (!USERINFO.test(userinfo)) return undefined
      if (!userinfo.split(':').every((p) => unescapeOk(p, 'other'))) return undefined
    }
    host = parsed
  }
  // setPath: the path must unescape
  if (!unescapeOk(rest, 'other')) return undefined
  return { scheme, host }
}

/** Go's url.URL.Port(): the port of `host:port` / `[v6]:port`, `''` when there is none. */
export function urlPort(hostport: string): string {
  const colon = hostport.indexOf(':')
  if (colon < 0) return ''
  const i = hostport.indexOf(']:')
  if (i >= 0) return hostport.slice(i + 2)
  if (hostport.includes(']')) return ''
  return hostport.slice(colon + 1)
}
