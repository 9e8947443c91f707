import { type ChildProcess, spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import { natsServerBin } from './nats-server.js'

/**
 * A real nats-server JetStream cluster (default 3 nodes) on 127.0.0.1 for integration and fault tests.
 * Each node has its own config file, client/cluster/monitor ports (random free loopback ports picked at
 * start and kept for the cluster's life, so URLs stay valid across restarts) and store directory.
 *
 * - `kill(i)` SIGKILLs node i (store kept); `restart(i, { wipe })` starts it again, optionally on an empty store;
 * - `killAll()` / `restartAll()` for whole-cluster outages;
 * - `streamLeader(name)` tells which node leads a stream (from the stream's cluster info);
 * - `stop()` kills every process this helper started (by pid, never by name) and removes the directories.
 * A process exit kills the children too, so a crashed test leaves no server behind.
 */
export interface ClusterNode {
  index: number
  /** The server's name (`n1`, `n2`, ...) as it appears in stream cluster info. */
  name: string
  url: string
  port: number
  clusterPort: number
  monitorPort: number
  storeDir: string
  /** Pid of the running process, or undefined while killed. */
  readonly pid: number | undefined
  readonly running: boolean
}

export interface NatsCluster {
  nodes: ClusterNode[]
  /** Client URLs of every node (what `--nats` gets, repeated). */
  urls: string[]
  /** SIGKILL node i; its store stays unless restarted with `wipe`. */
  kill(i: number): Promise<void>
  /** Start node i again on the same ports; `wipe: true` empties its store first. Waits until it is healthy. */
  restart(i: number, opts?: { wipe?: boolean }): Promise<void>
  killAll(): Promise<void>
  restartAll(opts?: { wipe?: boolean }): Promise<void>
  /** Index of the node that leads `stream` (waits up to `timeoutMs` for a leader). */
  streamLeader(stream: string, timeoutMs?: number): Promise<number>
  /** Resolves once every running node reports healthy (JetStream included) on its monitor port. */
  waitHealthy(timeoutMs?: number): Promise<void>
  /** Kill everything and remove the directories. Safe to call twice. */
  stop(): Promise<void>
}

/** A free TCP port on 127.0.0.1 (bound then released; the caller uses it at once). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The config file of one node. Pure. */
export function clusterNodeConfig(o: {
  name: string
  port: number
  clusterPort: number
  monitorPort: number
  storeDir: string
  routes: number[]
  clusterName: string
}): string {
  return [
    `server_name: ${o.name}`,
    `listen: "127.0.0.1:${o.port}"`,
    `http: "127.0.0.1:${o.monitorPort}"`,
    `jetstream { store_dir: ${JSON.stringify(o.storeDir)} }`,
    'cluster {',
    `  name: ${o.clusterName}`,
    `  listen: "127.0.0.1:${o.clusterPort}"`,
    `  routes: [${o.routes.map((p) => `"nats-route://127.0.0.1:${p}"`).join(', ')}]`,
    '}',
    '',
  ].join('\n')
}

async function healthy(monitorPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${monitorPort}/healthz`, { signal: AbortSignal.timeout(1000) })
    return res.ok
  } catch {
    return false
  }
}

export async function startNatsCluster(opts: { size?: number; timeoutMs?: number } = {}): Promise<NatsCluster> {
  const size = opts.size ?? 3
  const timeoutMs = opts.timeoutMs ?? 30_000
  const root = await mkdtemp(join(tmpdir(), 'zonegate-natsc-'))
  const clusterName = `zg${process.pid}`
  const ports: { port: number; clusterPort: number; monitorPort: number }[] = []
  const seen = new Set<number>()
  const pick = async () => {
    for (;;) {
      const p = await freePort()
      if (!seen.has(p)) {
        seen.add(p)
        return p
      }
    }
  }
  for (let i = 0; i < size; i++)
    ports.push({ port: await pick(), clusterPort: await pick(), monitorPort: await pick() })

  const children: (ChildProcess | undefined)[] = new Array(size).fill(undefined)
  const stderr: string[] = new Array(size).fill('')
  const killOnExit = () => {
    for (const c of children) if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }
  process.once('exit', killOnExit)

  const nodes: ClusterNode[] = ports.map((p, i) => ({
    index: i,
    name: `n${i + 1}`,
    url: `nats://127.0.0.1:${p.port}`,
    ...p,
    storeDir: join(root, `n${i + 1}`, 'store'),
    get pid() {
      const c = children[i]
      return c && c.exitCode === null && c.signalCode === null ? c.pid : undefined
    },
    get running() {
      const c = children[i]
      return c !== undefined && c.exitCode === null && c.signalCode === null
    },
  }))

  const launch = async (i: number) => {
    const n = nodes[i]!
    const conf = join(root, `n${i + 1}`, 'nats.conf')
    await mkdir(n.storeDir, { recursive: true })
    await writeFile(
      conf,
      clusterNodeConfig({
        name: n.name,
        port: n.port,
        clusterPort: n.clusterPort,
        monitorPort: n.monitorPort,
        storeDir: n.storeDir,
        routes: nodes.map((x) => x.clusterPort),
        clusterName,
      }),
    )
    const c = spawn(natsServerBin(), ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
    c.stderr?.on('data', (d: Buffer) => {
      stderr[i] = (stderr[i] + d.toString()).slice(-4000)
    })
    children[i] = c
  }

  const waitNode = async (i: number, deadline: number) => {
    const n = nodes[i]!
    while (Date.now() < deadline) {
      const c = children[i]
      if (!c || c.exitCode !== null) throw new Error(`nats-server ${n.name} exited: ${stderr[i]}`)
      if (await healthy(n.monitorPort)) return
      await sleep(100)
    }
    throw new Error(`nats-server ${n.name} not healthy within the deadline; stderr: ${stderr[i]}`)
  }

  const waitHealthy = async (ms = timeoutMs) => {
    const deadline = Date.now() + ms
    await Promise.all(nodes.map((n, i) => (n.running ? waitNode(i, deadline) : Promise.resolve())))
  }

  const kill = async (i: number) => {
    const c = children[i]
    if (!c || c.exitCode !== null || c.signalCode !== null) return
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve())
      c.kill('SIGKILL')
    })
  }

  const restart = async (i: number, o: { wipe?: boolean } = {}) => {
    await kill(i)
    if (o.wipe) await rm(nodes[i]!.storeDir, { recursive: true, force: true })
    await launch(i)
    await waitNode(i, Date.now() + timeoutMs)
  }

  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await Promise.all(nodes.map((_, i) => kill(i)))
    process.removeListener('exit', killOnExit)
    await rm(root, { recursive: true, force: true })
  }

  try {
    for (let i = 0; i < size; i++) await launch(i)
    await waitHealthy()
  } catch (err) {
    await stop()
    throw err
  }

  return {
    nodes,
    urls: nodes.map((n) => n.url),
    kill,
    restart,
    async killAll() {
      await Promise.all(nodes.map((_, i) => kill(i)))
    },
    async restartAll(o = {}) {
      await Promise.all(nodes.map((_, i) => kill(i)))
      if (o.wipe) await Promise.all(nodes.map((n) => rm(n.storeDir, { recursive: true, force: true })))
      for (let i = 0; i < size; i++) await launch(i)
      await waitHealthy()
    },
    async streamLeader(stream, ms = 15_000) {
      const deadline = Date.now() + ms
      let last = ''
      while (Date.now() < deadline) {
        const live = nodes.filter((n) => n.running).map((n) => n.url)
        try {
          const nc = await connect({ servers: live, timeout: 2000 })
          try {
            const jsm = await jetstreamManager(nc, { timeout: 3000 })
            const leader = (await jsm.streams.info(stream)).cluster?.leader
            const idx = nodes.findIndex((n) => n.name === leader)
            if (idx >= 0) return idx
            last = `no leader (${leader})`
          } finally {
            await nc.close()
          }
        } catch (err) {
          last = (err as Error).message
        }
        await sleep(200)
      }
      throw new Error(`stream ${stream}: no leader within ${ms} ms: ${last}`)
    },
    waitHealthy,
    stop,
  }
}
