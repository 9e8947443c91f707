import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Starts a real `nats-server` with JetStream on 127.0.0.1, a random port (`-p -1`, read back from a ports
 * file) and its own store directory. `restart()` brings it back on the same port and store (for outage
 * tests); `stop()` kills it and removes the store. A process exit kills the child too, so a crashed test
 * does not leave a server behind.
 */
export interface NatsServer {
  url: string
  port: number
  storeDir: string
  /** SIGKILL the server but keep the store; the port stays reserved by convention. */
  kill(): Promise<void>
  /** Start again on the same port and store (after kill()). */
  restart(): Promise<void>
  /** Kill and delete the store. */
  stop(): Promise<void>
  /** `nats-server --signal reload`: SIGHUP, then waits until the server logged the reload. */
  reload(): Promise<void>
}

export function natsServerBin(): string {
  if (process.env.NATS_SERVER_BIN) return process.env.NATS_SERVER_BIN
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) {
    if (existsSync(p)) return p
  }
  return 'nats-server'
}

async function waitForPortsFile(dir: string, child: ChildProcess, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}`)
    const files = (await readdir(dir).catch(() => [] as string[])).filter(
      (f) => f.endsWith('.ports') && f.includes(String(child.pid)),
    )
    if (files[0]) {
      // nats-server may still be writing the file: an empty or partial one is read again on the next round
      const text = await readFile(join(dir, files[0]), 'utf8').catch(() => '')
      let info: { nats?: string[] } = {}
      try {
        info = JSON.parse(text) as { nats?: string[] }
      } catch {}
      const url = info.nats?.[0]
      if (url) return Number(new URL(url).port)
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error('nats-server did not report its port in time')
}

/**
 * `config`: extra nats-server configuration text (e.g. `max_payload: 65536`), written to a file in the
 * server's directory and passed with `-c`; command-line flags (address, port, store) still win. `configFile`:
 * a configuration file used in place (e.g. `zonegate auth init`'s nats-auth.conf, rewritten by a revocation and
 * applied with `reload()`).
 */
export async function startNatsServer(
  opts: { port?: number; config?: string; configFile?: string; storeDir?: string } = {},
): Promise<NatsServer> {
  const root = await mkdtemp(join(tmpdir(), 'zonegate-nats-'))
  const configFile = opts.configFile ?? join(root, 'nats.conf')
  if (opts.config !== undefined) await writeFile(configFile, opts.config)
  // with a configuration file of its own (`storeDir` set), JetStream and its store come from that file
  const storeDir = opts.storeDir ?? join(root, 'store')
  let child: ChildProcess | undefined
  let port = opts.port ?? -1
  let stderr = ''
  let reloads = 0
  const killOnExit = () => child?.kill('SIGKILL')
  process.once('exit', killOnExit)

  const launch = async () => {
    const args = ['-a', '127.0.0.1', '-p', String(port), '--ports_file_dir', root]
    if (opts.storeDir === undefined) args.push('-js', '-sd', storeDir)
    if (opts.config !== undefined || opts.configFile !== undefined) args.push('-c', configFile)
    const c = spawn(natsServerBin(), args, { stdio: ['ignore', 'ignore', 'pipe'] })
    c.stderr?.on('data', (d: Buffer) => {
      reloads += (d.toString().match(/Reloaded server configuration/g) ?? []).length
      stderr = (stderr + d.toString()).slice(-4000)
    })
    child = c
    try {
      const p = await waitForPortsFile(root, c, 10_000)
      port = p
    } catch (err) {
      c.kill('SIGKILL')
      throw new Error(`${(err as Error).message}; stderr: ${stderr}`)
    }
  }
  await launch()

  const kill = async () => {
    const c = child
    if (!c || c.exitCode !== null || c.signalCode !== null) return
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve())
      c.kill('SIGKILL')
    })
  }

  return {
    get url() {
      return `nats://127.0.0.1:${port}`
    },
    get port() {
      return port
    },
    storeDir,
    kill,
    restart: launch,
    reload: async () => {
      const c = child
      if (!c || c.exitCode !== null) throw new Error('nats-server is not running')
      const before = reloads
      c.kill('SIGHUP')
      const deadline = Date.now() + 5000
      while (reloads <= before) {
        if (Date.now() > deadline) throw new Error(`nats-server did not reload; stderr: ${stderr.slice(-1000)}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    },
    stop: async () => {
      await kill()
      process.removeListener('exit', killOnExit)
      await rm(root, { recursive: true, force: true })
      if (opts.storeDir !== undefined) await rm(opts.storeDir, { recursive: true, force: true })
    },
  }
}
