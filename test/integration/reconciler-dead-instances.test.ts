import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunningReconciler } from '../../reconciler/main.js'
import { type Bus, connectBus, ensureNatsLayout } from '../../reconciler/transport/nats-bus.js'
import type { InstanceHeartbeat } from '../../schemas/events.js'
import { instanceKey } from '../../schemas/subjects.js'
import { CLI_PATH, runCli as runBuiltCli } from '../helpers/cli.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { egressYaml, externalYaml, MESH, startReconciler, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * Dead egress instances (issue #16.5), with real `zonegate egress` processes (heartbeat every 500 ms) and an
 * in-process reconciler on a real nats-server and Git repository:
 * - an egress stopped with SIGTERM deletes its heartbeat key;
 * - an egress killed with SIGKILL shows as `unknown` in `zonegate status` once its heartbeat is older than two
 *   of its periods, and the next rollout converges on the live instances without waiting for it until the
 *   bucket TTL (30 s) forgets it;
 * - `rollout watch --zone Z` for a zone the commit does not touch says so and exits 1.
 */
const cli = CLI_PATH
const HEARTBEAT = '500ms'

let nats: NatsServer
let bus: Bus
let repo: GitRepo
let dir: Awaited<ReturnType<typeof tempDir>>
let reconciler: RunningReconciler & { lines: Record<string, unknown>[] }
const egresses = new Map<string, ChildProcess>()
const output = new Map<string, string>()

function spawnEgress(instance: string): ChildProcess {
  const c = spawn(
    process.execPath,
    [
      cli,
      'egress',
      '--zone',
      'zone-a',
      '--name',
      'ze-a',
      '--instance',
      instance,
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--heartbeat',
      HEARTBEAT,
      '--grace',
      '200ms',
      '--workers',
      '1',
      '--state-dir',
      join(dir.path, `state-${instance}`),
      '--nats',
      nats.url,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } },
  )
  output.set(instance, '')
  const keep = (d: Buffer) => output.set(instance, ((output.get(instance) ?? '') + d.toString()).slice(-8000))
  c.stdout?.on('data', keep)
  c.stderr?.on('data', keep)
  egresses.set(instance, c)
  return c
}

async function heartbeat(instance: string): Promise<InstanceHeartbeat | undefined> {
  const e = await bus.kv.instances.get(instanceKey('zone-a', 'ze-a', instance))
  return e?.operation === 'PUT' ? e.json<InstanceHeartbeat>() : undefined
}

const runCli = (args: string[]) => runBuiltCli([...args, '--nats', nats.url], { timeoutMs: 40_000 })

const stopped = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null

beforeAll(async () => {
  expect(existsSync(cli), 'run `npm run build` first').toBe(true)
  nats = await startNatsServer()
  dir = await tempDir('zonegate-dead-instances-')
  repo = await createGitRepo({
    dir: join(dir.path, 'repo'),
    files: {
      'meshes/default.yaml': MESH,
      'zones/zone-a.yaml': egressYaml('zone-a', 10002),
      'zones/zone-b.yaml': egressYaml('zone-b', 10012),
      'external/a.yaml': externalYaml('a', '127.0.0.1:18080', 'zone-a'),
      'external/b.yaml': externalYaml('b', '127.0.0.1:18090', 'zone-b'),
    },
  })
  bus = await connectBus({ servers: [nats.url], name: 'test', log: pino({ level: 'silent' }) })
  await ensureNatsLayout(bus)
  reconciler = await startReconciler({
    repo: repo.dir,
    nats: nats.url,
    cacheDir: dir.path,
    id: 'rec',
    intervalMs: 300,
    rolloutTimeoutMs: 40_000,
  })
})

afterAll(async () => {
  for (const c of egresses.values()) if (!stopped(c)) c.kill('SIGKILL')
  await reconciler?.stop()
  await bus?.close()
  await nats?.stop()
  await dir?.remove()
})

describe('reconciler dead instances', () => {
  it('dead instances - SIGTERM deletes the heartbeat; a SIGKILLed egress is `unknown` and the next rollout does not wait for it', async () => {
    for (const i of ['e1', 'e2', 'e3']) spawnEgress(i)
    await waitUntil(
      async () => {
        for (const i of ['e1', 'e2', 'e3']) if ((await heartbeat(i))?.state !== 'serving') return undefined
        return true
      },
      20_000,
      `three egresses serving (${[...output.values()].join('\n').slice(-2000)})`,
    )
    expect((await heartbeat('e1'))?.heartbeatMs).toBe(500)

    // a clean stop removes the instance at once
    const e1 = egresses.get('e1') as ChildProcess
    const e1Exit = new Promise((r) => e1.once('exit', r))
    e1.kill('SIGTERM')
    await e1Exit
    expect(await heartbeat('e1')).toBeUndefined()

    // kill -9: the key stays (until the bucket TTL), but status says unknown after two heartbeat periods
    const e2 = egresses.get('e2') as ChildProcess
    const e2Exit = new Promise((r) => e2.once('exit', r))
    e2.kill('SIGKILL')
    await e2Exit
    await new Promise((r) => setTimeout(r, 1500))
    expect((await heartbeat('e2'))?.state).toBe('serving') // the last heartbeat is still in KV
    const status = await runCli(['status', '-o', 'json'])
    const view = JSON.parse(status.stdout) as {
      zones: { zone: string; instances: { instance: string; state: string }[] }[]
    }
    const states = Object.fromEntries(
      (view.zones.find((z) => z.zone === 'zone-a')?.instances ?? []).map((i) => [i.instance, i.state]),
    )
    expect(states).toEqual({ e2: 'unknown', e3: 'serving' })
    expect((await runCli(['status'])).stdout).toMatch(/ze-a\/e2\s+zone-a\s+unknown/)

    // a new commit converges on e3 alone, long before the 30 s TTL would forget e2
    const sha = await repo.commit({ 'external/a.yaml': externalYaml('a', '127.0.0.1:18081', 'zone-a') })
    const watch = await runCli(['rollout', 'watch', '--commit', sha, '--until', 'converged', '--timeout', '20s'])
    expect(watch.code, watch.stdout + watch.stderr).toBe(0)
    expect(watch.stdout).toMatch(/zone-a\s+converged\s+gen 2\s+1 instance\(s\)/)
    expect(watch.ms).toBeLessThan(15_000)

    // the commit touched zone-a only: watching zone-b says so and exits 1 (it used to say "converged")
    const other = await runCli(['rollout', 'watch', '--commit', sha, '--zone', 'zone-b', '--timeout', '10s'])
    expect(other.code, other.stdout + other.stderr).toBe(1)
    expect(other.stdout + other.stderr).toMatch(/does not touch zone zone-b/)
  })
})
