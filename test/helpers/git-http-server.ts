import { spawn } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A smart-HTTP Git server for tests: a Node http server on 127.0.0.1 that bridges each request to
 * `git http-backend` (CGI, shipped with git). isomorphic-git speaks only smart HTTP, so this is how tests
 * serve a repository "remotely". Every repository under `projectRoot` is exported
 * (`http://127.0.0.1:PORT/<path under projectRoot>`), bare or not.
 *
 * Optional basic auth (`auth: { username, password }`) answers 401 without the right credentials, so tests can
 * check that credentials are sent (and never logged). `requests` counts requests served.
 */
export interface GitHttpServer {
  url: string
  port: number
  /** URL of a repository given its path relative to projectRoot. */
  urlFor(relPath: string): string
  readonly requests: number
  close(): Promise<void>
}

export async function startGitHttpServer(opts: {
  projectRoot: string
  port?: number
  auth?: { username: string; password: string }
}): Promise<GitHttpServer> {
  let requests = 0
  const server = http.createServer((req, res) => {
    requests++
    if (opts.auth) {
      const expected = `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}`
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' })
        res.end('unauthorized')
        return
      }
    }
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      GIT_PROJECT_ROOT: opts.projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      REQUEST_METHOD: req.method,
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      GIT_PROTOCOL: (req.headers['git-protocol'] as string | undefined) ?? '',
      REMOTE_ADDR: '127.0.0.1',
    }
    if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length']
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = String(req.headers['content-encoding'])
    const cgi = spawn('git', ['http-backend'], { env })
    req.pipe(cgi.stdin)
    cgi.stdin.on('error', () => {})
    let head = Buffer.alloc(0)
    let headersDone = false
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk)
        return
      }
      head = Buffer.concat([head, chunk])
      const i = head.indexOf('\r\n\r\n')
      if (i < 0) return
      headersDone = true
      let status = 200
      for (const line of head.subarray(0, i).toString().split('\r\n')) {
        const colon = line.indexOf(':')
        if (colon < 0) continue
        const k = line.slice(0, colon).trim()
        const v = line.slice(colon + 1).trim()
        if (k.toLowerCase() === 'status') status = Number.parseInt(v, 10)
        else res.setHeader(k, v)
      }
      res.writeHead(status)
      res.write(head.subarray(i + 4))
    })
    cgi.on('error', () => {
      if (!res.headersSent) res.writeHead(500)
      res.end()
    })
    cgi.on('close', () => {
      if (!headersDone && !res.headersSent) res.writeHead(502)
      res.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const url = `http://127.0.0.1:${port}`
  return {
    url,
    port,
    urlFor: (relPath) => `${url}/${relPath.replace(/^\/+/, '')}`,
    get requests() {
      return requests
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
