import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

/** The BUILT demo upstream (dist/demo/upstream.js), probed with the built `zonegate probe`. */
const root = resolve(import.meta.dirname, '../..')
const cli = resolve(root, 'dist/cli/main.js')
const upstreamJs = resolve(root, 'dist/demo/upstream.js')

const children: ChildProcess[] = []

/** Starts the upstream on a random port and resolves with its port once it printed its ready line. */
function startUpstream(name: string, extra: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn('node', [upstreamJs, '--listen', '127.0.0.1:0', '--name', name, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  return new Promise((resolveReady, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`upstream not ready: ${out}`)), 15_000)
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolveReady({ child, port: Number(m[1]) })
      }
    })
    child.once('exit', (code) => reject(new Error(`upstream exited ${code}: ${out}`)))
  })
}

function probeCli(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((done) => {
    execFile('node', [cli, 'probe', ...args], { timeout: 20_000 }, (err, stdout) => {
      const code = err ? (err as { code?: number }).code : 0
      done({ code: typeof code === 'number' ? code : -1, stdout })
    })
  })
}

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL')
})

describe('demo upstream', () => {
  it('demo upstream - answers any SNI with its name and stops on SIGTERM', async () => {
    expect(existsSync(upstreamJs), 'run `npm run build` first').toBe(true)
    const { child, port } = await startUpstream('zone-b-ingress')
    const r = await probeCli(['--sni', 'orders{mesh=default}', '--output', 'json', `127.0.0.1:${port}`])
    const result = JSON.parse(r.stdout) as { answer: string; status: string; peer: { subject: string; san: string } }
    expect(result.answer).toBe('zone-b-ingress')
    expect(result.status).toBe('HTTP/1.1 200 OK')
    expect(result.peer.subject).toBe('CN=zone-b-ingress')
    expect(result.peer.san).toContain('DNS:zone-b-ingress')
    expect(r.code).toBe(0)
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
  })

  it('demo upstream - --plain speaks HTTP without TLS, so a TLS probe fails', async () => {
    const { port } = await startUpstream('httpbin-plain', ['--plain'])
    const r = await probeCli([
      '--sni',
      'httpbin{mesh=default}',
      '--timeout',
      '3s',
      '--output',
      'json',
      `127.0.0.1:${port}`,
    ])
    expect(JSON.parse(r.stdout)).toMatchObject({ handshake: false, outcome: 'tls-error' })
    expect(r.code).toBe(1)
    const res = await fetch(`http://127.0.0.1:${port}/`)
    expect(res.headers.get('upstream')).toBe('httpbin-plain')
    expect(await res.text()).toBe('upstream: httpbin-plain\n')
  })
})
