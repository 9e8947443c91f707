/**
 * Address helpers with Go's and govalidator's semantics, as Kuma's validators use them
 * (../shared/reference/kuma-model.md §3.2, §3.4). Pure; no DNS or socket access.
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

/** The port of a URL as Go's url.Port() sees it (`''` when absent); undefined when not an absolute URL. */
export function urlPort(s: string): string | undefined {
  if (s.startsWith('/')) return ''
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#[\]]*)(?::(\d*))?(?:[/?#]|$)/.exec(s)
  if (!m) return /^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]+$/.test(s) ? '' : undefined
  return m[2] ?? ''
}
