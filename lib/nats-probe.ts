import net from 'node:net'
import { natsUnreachableMessage, UsageError } from './common.js'

/**
 * Bounded first contact with NATS for the CLI commands (issue #12.3). The NATS client's `connect()` gives up
 * at its own timeout but leaves the socket open when the peer accepted the connection and said nothing (a
 * plain TCP listener, an HTTP server), so the process never exits. A NATS server speaks first: it sends
 * `INFO {...}\r\n` as soon as a client connects (also before TLS). So each URL is probed with a plain socket
 * that reads the first line within the budget and is always destroyed; only the servers that answered with
 * INFO are handed to the client.
 */

/** Host and port of a NATS URL (`nats://h:p`, `tls://h:p`, `h:p`, `h`; default port 4222). Pure. */
export function natsHostPort(url: string): { host: string; port: number } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `nats://${url}`
  const u = new URL(withScheme)
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'
  return { host, port: u.port ? Number(u.port) : 4222 }
}

/** What a peer's first bytes say: NATS (`INFO `), nothing yet, or something else (quoted for the message). Pure. */
export function classifyGreeting(
  first: string,
): { kind: 'nats' } | { kind: 'incomplete' } | { kind: 'other'; shown: string } {
  if (first.startsWith('INFO ')) return { kind: 'nats' }
  if ('INFO '.startsWith(first)) return { kind: 'incomplete' }
  const line = first.split(/\r?\n/)[0] ?? ''
  const shown = line.replace(/[^\x20-\x7e]/g, '?').slice(0, 60)
  return { kind: 'other', shown }
}

/** Probes one URL; resolves with undefined when it is a NATS server, else with the reason it is not. */
export function probeNatsUrl(url: string, timeoutMs: number): Promise<string | undefined> {
  let where: { host: string; port: number }
  try {
    where = natsHostPort(url)
  } catch {
    return Promise.resolve('not a valid URL')
  }
  return new Promise((resolve) => {
    let got = ''
    let done = false
    let accepted = false
    const socket = net.connect({ host: where.host, port: where.port })
    const finish = (why: string | undefined) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve(why)
    }
    const seconds = `${Math.round(timeoutMs / 100) / 10}s`
    const silence = () => {
      if (!accepted) return `no answer within ${seconds}`
      if (!got) return `not a NATS server: it accepted the connection but sent nothing within ${seconds}`
      return `not a NATS server: no complete INFO line within ${seconds}`
    }
    const timer = setTimeout(() => finish(silence()), timeoutMs)
    socket.on('connect', () => {
      accepted = true
    })
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1')
      const c = classifyGreeting(got)
      if (c.kind === 'nats') finish(undefined)
      else if (c.kind === 'other') finish(`not a NATS server: it answered "${c.shown}" instead of NATS's INFO`)
      else if (got.length > 4096) finish('not a NATS server: no INFO line')
    })
    socket.on('error', (err: NodeJS.ErrnoException) =>
      finish(err.code === 'ECONNREFUSED' ? 'connection refused' : err.message),
    )
    socket.on('close', () => finish(accepted ? 'not a NATS server: it closed the connection without a word' : 'closed'))
  })
}

/**
 * Probes every server at once within `timeoutMs`; returns those that greeted like NATS (in the given order).
 * Throws a UsageError (exit 2) naming each URL and why when none did.
 */
export async function natsServersAnswering(servers: readonly string[], timeoutMs: number): Promise<string[]> {
  const reasons = await Promise.all(servers.map((s) => probeNatsUrl(s, timeoutMs)))
  const ok = servers.filter((_, i) => reasons[i] === undefined)
  if (ok.length > 0) return ok
  const why = servers.map((s, i) => (servers.length > 1 ? `${s}: ${reasons[i]}` : reasons[i])).join('; ')
  throw new UsageError(natsUnreachableMessage(servers, new Error(why)))
}

/** The budget of a command's first contact with NATS: its `--timeout`, at most 5 s (default 5 s). Pure. */
export const connectBudgetMs = (timeoutMs?: number) => Math.max(100, Math.min(timeoutMs ?? 5000, 5000))
