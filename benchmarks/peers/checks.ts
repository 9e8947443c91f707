/**
 * Rejection and routing checks of the reference method, with real sockets on 127.0.0.1: unknown SNI, no SNI and
 * plain-HTTP bytes must be closed within 2 s with no response (a lone TLS alert record counts as "no response":
 * the egress answers `unrecognized_name`); a.test → a, b.test → b, c.test → a and b, raw.test → 1 KiB.
 */
import net from 'node:net'
import tls from 'node:tls'
import { clientHello, PLAIN_HTTP } from './hello.js'

export interface RejectResult {
  /** Count closed within 2 s with no response, out of `tries`. */
  closed: number
  tries: number
  slowestMs: number
  /** What was received before the close: '' (nothing), 'alert' (only TLS alert records), or 'data'. */
  answers: string[]
}

export interface CheckResult {
  unknownSni: RejectResult
  noSni: RejectResult
  nonTls: RejectResult
  routingOk: boolean
  routing: Record<string, string[]>
}

function isOnlyAlerts(buf: Buffer): boolean {
  let p = 0
  while (p + 5 <= buf.length) {
    if (buf[p] !== 21) return false
    p += 5 + buf.readUInt16BE(p + 3)
  }
  return p === buf.length
}

/** Sends `payload` and waits ≤ 2 s for the peer to close; ok when it closed having sent nothing or only alerts. */
function rejectOnce(port: number, payload: Buffer): Promise<{ ok: boolean; ms: number; answer: string }> {
  return new Promise((resolve) => {
    const t0 = Date.now()
    const chunks: Buffer[] = []
    const sock = net.connect(port, '127.0.0.1', () => sock.write(payload))
    const finish = (closed: boolean) => {
      clearTimeout(timer)
      sock.destroy()
      const got = Buffer.concat(chunks)
      const answer = got.length === 0 ? '' : isOnlyAlerts(got) ? 'alert' : 'data'
      resolve({ ok: closed && answer !== 'data', ms: Date.now() - t0, answer })
    }
    const timer = setTimeout(() => finish(false), 2000)
    sock.on('data', (d) => chunks.push(d))
    sock.on('error', () => {})
    sock.on('close', () => finish(true))
  })
}

async function rejectMany(port: number, payload: Buffer, tries: number): Promise<RejectResult> {
  const r: RejectResult = { closed: 0, tries, slowestMs: 0, answers: [] }
  for (let i = 0; i < tries; i++) {
    const one = await rejectOnce(port, payload)
    if (one.ok) r.closed++
    r.slowestMs = Math.max(r.slowestMs, one.ms)
    if (!r.answers.includes(one.answer)) r.answers.push(one.answer)
  }
  return r
}

/** GET /small over TLS with `sni`; resolves to the X-Upstream header ('' on any failure, within 5 s). */
function upstreamOf(port: number, sni: string): Promise<string> {
  return new Promise((resolve) => {
    let data = ''
    const sock = tls.connect({ host: '127.0.0.1', port, servername: sni, rejectUnauthorized: false }, () => {
      sock.write(`GET /small HTTP/1.1\r\nHost: ${sni}\r\nConnection: close\r\n\r\n`)
    })
    const timer = setTimeout(() => sock.destroy(), 5000)
    sock.setEncoding('latin1')
    sock.on('data', (d: string) => {
      data += d
    })
    sock.on('error', () => {})
    sock.on('close', () => {
      clearTimeout(timer)
      resolve(/^x-upstream:\s*(\S+)/im.exec(data)?.[1] ?? '')
    })
  })
}

/** raw.test through the target answers at least 1 KiB. */
function rawOk(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let n = 0
    const sock = net.connect(port, '127.0.0.1', () => sock.write(clientHello('raw.test')))
    const timer = setTimeout(() => sock.destroy(), 5000)
    sock.on('data', (d) => {
      n += d.length
    })
    sock.on('error', () => {})
    sock.on('close', () => {
      clearTimeout(timer)
      resolve(n >= 1024)
    })
  })
}

/** Routing only; `ports.c` undefined (direct: there is no balancer) skips the c.test → a|b check. */
export async function checkRouting(
  ports: { a: number; b: number; c?: number },
  rawPort: number,
): Promise<Pick<CheckResult, 'routingOk' | 'routing'>> {
  const routing: Record<string, string[]> = {}
  const cases: [string, number, number][] = [
    ['a.test', ports.a, 2],
    ['b.test', ports.b, 2],
  ]
  if (ports.c !== undefined) cases.push(['c.test', ports.c, 4])
  for (const [sni, port, n] of cases) {
    const seen: string[] = []
    for (let i = 0; i < n; i++) seen.push(await upstreamOf(port, sni))
    routing[sni] = seen
  }
  const raw = await rawOk(rawPort)
  routing['raw.test'] = [raw ? '1KiB' : 'fail']
  const ok =
    routing['a.test']!.every((u) => u === 'a') &&
    routing['b.test']!.every((u) => u === 'b') &&
    (ports.c === undefined ||
      (routing['c.test']!.includes('a') &&
        routing['c.test']!.includes('b') &&
        routing['c.test']!.every((u) => u === 'a' || u === 'b'))) &&
    raw
  return { routingOk: ok, routing }
}

/** All checks against a proxy listening on `port` (5 tries per rejection case). */
export async function checkProxy(port: number, tries = 5): Promise<CheckResult> {
  return {
    unknownSni: await rejectMany(port, clientHello('unknown.test'), tries),
    noSni: await rejectMany(port, clientHello(), tries),
    nonTls: await rejectMany(port, PLAIN_HTTP, tries),
    ...(await checkRouting({ a: port, b: port, c: port }, port)),
  }
}
