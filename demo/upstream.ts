#!/usr/bin/env node
import { realpathSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { generate } from 'selfsigned'

/**
 * A demo upstream: stands for a remote zone's ingress (passthrough routes) or an external service
 * (terminate-mtls routes) in the Procfile and tests. It is a TLS server with a self-signed certificate made
 * at start (CN and SAN = NAME, plus localhost/127.0.0.1), accepts any SNI, and answers every HTTP request
 * with header `upstream: NAME` and body `upstream: NAME`, so `zonegate probe` and tests can tell which
 * upstream answered. `--plain` serves the same over plain HTTP (an ExternalService without tls).
 *
 *   node dist/demo/upstream.js --listen 127.0.0.1:20001 --name zone-b-ingress [--plain]
 *
 * Prints `upstream NAME listening on HOST:PORT (tls|plain)` when ready; SIGTERM/SIGINT close it (exit 0).
 */

export interface DemoUpstream {
  name: string
  host: string
  port: number
  tls: boolean
  /** PEM of the self-signed certificate (empty with plain). */
  cert: string
  close(): Promise<void>
}

/** Makes a self-signed EC P-256 certificate for `name` (SAN DNS:name, DNS:localhost, IP:127.0.0.1). */
export async function selfSignedFor(name: string): Promise<{ key: string; cert: string }> {
  const dnsName = name.replace(/[^A-Za-z0-9.-]/g, '-') || 'upstream'
  const pems = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    curve: 'P-256',
    notAfterDate: new Date(Date.now() + 365 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: dnsName },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  })
  return { key: pems.private, cert: pems.cert }
}

/**
 * Starts a demo upstream on host:port (port 0 = random) answering with its name. Resolves once listening;
 * rejects when the address is in use.
 */
export async function startDemoUpstream(opts: {
  name: string
  host: string
  port: number
  plain?: boolean
}): Promise<DemoUpstream> {
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    const body = `upstream: ${opts.name}\n`
    res.writeHead(200, {
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(body),
      upstream: opts.name,
    })
    res.end(body)
  }
  let cert = ''
  let server: Server
  if (opts.plain) server = createHttpServer(answer)
  else {
    const pems = await selfSignedFor(opts.name)
    cert = pems.cert
    server = createHttpsServer({ key: pems.key, cert: pems.cert }, answer)
  }
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : opts.port
  return {
    name: opts.name,
    host: opts.host,
    port,
    tls: !opts.plain,
    cert,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value)
  if (!m) throw new Error(`--listen: expected HOST:PORT, got "${value}"`)
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port: Number(m[3]) }
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      name: { type: 'string' },
      plain: { type: 'boolean', default: false },
    },
  })
  if (!values.listen || !values.name) {
    process.stderr.write('usage: upstream --listen HOST:PORT --name NAME [--plain]\n')
    process.exitCode = 2
    return
  }
  const { host, port } = parseListen(values.listen)
  const up = await startDemoUpstream({ name: values.name, host, port, plain: values.plain })
  process.stdout.write(`upstream ${up.name} listening on ${host}:${up.port} (${up.tls ? 'tls' : 'plain'})\n`)
  const stop = () => {
    void up.close().then(() => process.exit(0))
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

// run as a program (also through a symlinked dist/), not when imported by tests
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  main(process.argv.slice(2)).catch((err: Error) => {
    process.stderr.write(`upstream: ${err.message}\n`)
    process.exit(1)
  })
}
