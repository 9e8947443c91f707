import { existsSync } from 'node:fs'
import { createServer as createNetServer, type Server as NetServer, type Socket, connect as tcpConnect } from 'node:net'
import { createSecureContext, createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { selfSignedFor } from '../../demo/upstream.js'
import { formatProbeResult, ProbeOutcome, probe } from '../../egress/probe/probe.js'
import { CLI_PATH, runCli as runBuiltCli } from '../helpers/cli.js'

/**
 * `zonegate probe` against real sockets: a TLS server made here (known SNI answers with its name, unknown
 * SNI is refused during the handshake), reached directly or through plain TCP forwarders that pass, close
 * or reset the connection like an egress does.
 */
const cli = CLI_PATH

const servers: (NetServer | TlsServer)[] = []
const sockets = new Set<Socket>()
let tlsPort = 0
let forwardPort = 0
let closePort = 0
let resetPort = 0
let silentPort = 0
let alertPort = 0
let refusedPort = 0

async function listen(server: NetServer | TlsServer): Promise<number> {
  servers.push(server)
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const a = server.address()
  return typeof a === 'object' && a ? a.port : 0
}

const runCli = (args: string[]) => runBuiltCli(args, { timeoutMs: 20_000 })

beforeAll(async () => {
  expect(existsSync(cli), 'run `npm run build` first').toBe(true)
  const pems = await selfSignedFor('upstream-orders')
  const ctx = createSecureContext({ key: pems.key, cert: pems.cert })
  const tls = createTlsServer({
    key: pems.key,
    cert: pems.cert,
    SNICallback: (name, cb) => (name === 'orders{mesh=default}' ? cb(null, ctx) : cb(new Error(`unknown ${name}`))),
  })
  tls.on('secureConnection', (s) => {
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nupstream: upstream-orders\r\ncontent-length: 0\r\n\r\n'))
    s.on('error', () => {})
  })
  tls.on('tlsClientError', () => {})
  tlsPort = await listen(tls)
  forwardPort = await listen(
    createNetServer((c: Socket) => {
      const up = tcpConnect(tlsPort, '127.0.0.1')
      c.pipe(up).pipe(c)
      c.on('error', () => up.destroy())
      up.on('error', () => c.destroy())
    }),
  )
  closePort = await listen(createNetServer((c: Socket) => c.once('data', () => c.end())))
  resetPort = await listen(createNetServer((c: Socket) => c.once('data', () => c.resetAndDestroy())))
  silentPort = await listen(createNetServer((c: Socket) => c.on('error', () => {})))
  // answers the ClientHello with a fatal TLS alert unrecognized_name (112), as an SNI router may
  alertPort = await listen(
    createNetServer((c: Socket) => c.once('data', () => c.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112])))),
  )
  const tmp = createNetServer()
  refusedPort = await listen(tmp)
  await new Promise<void>((r) => tmp.close(() => r()))
})

afterAll(async () => {
  for (const s of sockets) s.destroy()
  for (const s of servers) {
    if (s.listening) await new Promise<void>((r) => s.close(() => r()))
  }
})

describe('probe', () => {
  it('probe - the built CLI reports the upstream that answered through a forwarder (exit 0)', async () => {
    const r = await runCli(['probe', '--sni', 'orders{mesh=default}', `127.0.0.1:${forwardPort}`])
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toBe(`connected  127.0.0.1:${forwardPort}  sni orders{mesh=default}`)
    expect(lines[1]).toMatch(/^ {2}tls {7}TLSv1\.[23] /)
    expect(lines[2]).toContain('CN=upstream-orders')
    expect(lines[2]).toContain('not verified: DEPTH_ZERO_SELF_SIGNED_CERT')
    expect(lines[3]).toBe('  answer    upstream-orders  (HTTP/1.1 200 OK)')
    expect(r.code).toBe(0)
  })

  it('probe - a refused port exits 1', async () => {
    const r = await runCli(['probe', '--sni', 'x', '--output', 'json', `127.0.0.1:${refusedPort}`])
    expect(JSON.parse(r.stdout)).toMatchObject({ outcome: 'refused', handshake: false, detail: 'ECONNREFUSED' })
    expect(r.code).toBe(1)
  })

  it('probe - --verify with an unknown CA ends untrusted (exit 1)', async () => {
    const r = await runCli(['probe', '--verify', '--sni', 'orders{mesh=default}', `127.0.0.1:${tlsPort}`])
    expect(r.stdout).toMatch(/^untrusted {2}.*DEPTH_ZERO_SELF_SIGNED_CERT/)
    expect(r.code).toBe(1)
  })

  it.each<[string, () => number, string, ProbeOutcome, RegExp]>([
    ['an unknown SNI refused by the server', () => tlsPort, 'unknown{mesh=default}', ProbeOutcome.Closed, /closed/],
    ['a TLS alert', () => alertPort, 'unknown{mesh=default}', ProbeOutcome.Alert, /^unrecognized_name$/],
    ['a forwarder that closes', () => closePort, 'orders{mesh=default}', ProbeOutcome.Closed, /closed before/],
    ['a forwarder that resets', () => resetPort, 'orders{mesh=default}', ProbeOutcome.Reset, /reset/],
    ['a server that never answers', () => silentPort, 'orders{mesh=default}', ProbeOutcome.Timeout, /within 700 ms/],
  ])('probe - %s is reported without a handshake', async (_name, port, sni, outcome, detail) => {
    // a long budget for answers that do come (a loaded machine), a short one for the silent server
    const timeoutMs = outcome === ProbeOutcome.Timeout ? 700 : 8000
    const r = await probe({ host: '127.0.0.1', port: port(), sni, timeoutMs })
    expect(r.outcome).toBe(outcome)
    expect(r.detail).toMatch(detail)
    expect(r.handshake).toBe(false)
    expect(formatProbeResult(r)[0]).toMatch(new RegExp(`^${outcome} {2}127\\.0\\.0\\.1:${port()} {2}sni `))
  })

  it('probe - --no-request only handshakes', async () => {
    const r = await probe({
      host: '127.0.0.1',
      port: tlsPort,
      sni: 'orders{mesh=default}',
      timeoutMs: 2000,
      request: false,
    })
    expect(r.handshake).toBe(true)
    expect(r.answer).toBeUndefined()
    expect(r.handshakeMs).toBeGreaterThan(0)
  })
})
