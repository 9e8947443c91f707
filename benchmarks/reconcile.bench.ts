import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { connect } from '@nats-io/transport-node'
import { pino } from 'pino'
import { type RunningReconciler, runReconciler } from '../reconciler/main.js'
import { hubSignature } from '../reconciler/triggers.js'
import { gitRevision } from '../schemas/revision.js'
import { Bucket, RECONCILE_SUBJECT, tableKey } from '../schemas/subjects.js'
import type { PublishedZoneTable } from '../schemas/table.js'
import { createGitRepo, type GitRepo } from '../test/helpers/git-repo.js'
import { startNatsServer } from '../test/helpers/nats-server.js'
import { baseFiles, egressYaml, externalYaml, MESH, tempDir } from '../test/helpers/reconciler-world.js'
import type { BenchContext } from './run.js'

/**
 * reconcile: the reconciler end to end, in-process, against a real nats-server and a real Git repository.
 * 1. Detection-to-published latency of a one-file change (zone-a's pinned ExternalService): from sending the
 *    trigger (NATS request on zonegate.cmd.reconcile, or a signed POST /hooks/git) to the new table arriving on
 *    a KV watch of `zone-a.table`. p50/p99 over N commits (target p50 < 100 ms).
 * 2. The full pass for a 10,000-ExternalService snapshot (20 files × 500 documents, 10 zones): a commit that
 *    rewrites every file, from trigger() to the pass's report: read from Git, parse, validate, compile, diff,
 *    publish the 10 zones and events (target < 1.5 s).
 */

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0

async function latency(ctx: BenchContext, n: number): Promise<void> {
  const server = await startNatsServer()
  const dir = await tempDir('zonegate-bench-rec-')
  const repo = await createGitRepo({ dir: join(dir.path, 'repo'), files: baseFiles() })
  await writeFile(join(dir.path, 'secret'), 'bench-secret')
  const r = await runReconciler({
    repo: repo.dir,
    branch: 'main',
    intervalMs: 60_000,
    http: { host: '127.0.0.1', port: 0 },
    nats: [server.url],
    cacheDir: dir.path,
    webhookSecretFile: join(dir.path, 'secret'),
    allowEmpty: false,
    defaultZone: 'default',
    logger: pino({ level: 'silent' }),
  })
  const nc = await connect({ servers: server.url })
  try {
    const kv = await new Kvm(jetstream(nc)).open(Bucket.Tables)
    await waitFor(() => r.status().lastAppliedRevision !== undefined, 10_000)
    const arrivals = new Map<string, number>()
    const watch = await kv.watch({ key: tableKey('zone-a') })
    void (async () => {
      for await (const e of watch) {
        if (e.operation === 'PUT') arrivals.set(e.json<PublishedZoneTable>().revision, performance.now())
      }
    })()
    let port = 20_000
    for (const trigger of ['nats', 'webhook'] as const) {
      const samples: number[] = []
      for (let i = 0; i < n; i++) {
        const sha = await repo.commit({
          'external/a-only.yaml': externalYaml('a-only', `127.0.0.1:${port++}`, 'zone-a'),
        })
        const revision = gitRevision('main', sha)
        const t0 = performance.now()
        if (trigger === 'nats') void nc.request(RECONCILE_SUBJECT, '{}', { timeout: 10_000 }).catch(() => {})
        else {
          const body = JSON.stringify({ ref: 'refs/heads/main', after: sha })
          void fetch(`${r.httpUrl}/hooks/git`, {
            method: 'POST',
            body,
            headers: { 'x-hub-signature-256': hubSignature('bench-secret', body), 'x-github-event': 'push' },
          })
        }
        await waitFor(() => arrivals.has(revision), 10_000)
        samples.push((arrivals.get(revision) as number) - t0)
      }
      samples.sort((a, b) => a - b)
      ctx.report(`reconcile latency ${trigger} trigger p50 (n=${n})`, pct(samples, 50), 'ms', { target: 100 })
      ctx.report(`reconcile latency ${trigger} trigger p99 (n=${n})`, pct(samples, 99), 'ms')
    }
    watch.stop()
  } finally {
    await r.stop()
    await nc.close()
    await server.stop()
    await dir.remove()
  }
}

/**
 * 10,000 ExternalServices in 20 files, each pinned to one of 10 zones (1,000 routes per zone table, ~200 KB:
 * a table must fit NATS's default 1 MB max_payload). `variant` changes every address so every file is new.
 */
function bigSnapshot(count: number, variant: number): Record<string, string> {
  const zones = Array.from({ length: 10 }, (_, z) => `zone-${z}`)
  const files: Record<string, string> = { 'meshes/default.yaml': MESH }
  zones.forEach((zone, z) => {
    files[`zones/${zone}.yaml`] = egressYaml(zone, 10002 + z * 10)
  })
  const perFile = 500
  for (let f = 0; f * perFile < count; f++) {
    const docs: string[] = []
    for (let i = f * perFile; i < Math.min(count, (f + 1) * perFile); i++) {
      const address = `10.${variant % 250}.${(i >> 8) & 255}.${i & 255}:${8000 + (i % 1000)}`
      docs.push(externalYaml(`svc-${i}`, address, zones[i % zones.length]))
    }
    files[`external/es-${String(f).padStart(2, '0')}.yaml`] = docs.join('---\n')
  }
  return files
}

async function fullPass(ctx: BenchContext, count: number, runs: number): Promise<void> {
  const server = await startNatsServer()
  const dir = await tempDir('zonegate-bench-full-')
  let repo: GitRepo | undefined
  let r: RunningReconciler | undefined
  try {
    repo = await createGitRepo({ dir: join(dir.path, 'repo'), files: bigSnapshot(count, 0) })
    r = await runReconciler({
      repo: repo.dir,
      branch: 'main',
      intervalMs: 600_000,
      nats: [server.url],
      cacheDir: dir.path,
      allowEmpty: false,
      defaultZone: 'default',
      logger: pino({ level: 'silent' }),
    })
    const running = r
    await waitFor(() => running.status().lastAppliedRevision !== undefined, 60_000)
    const samples: number[] = []
    const steps: Record<string, number[]> = {}
    for (let i = 1; i <= runs; i++) {
      await repo.commitAll(bigSnapshot(count, i))
      const t0 = performance.now()
      const report = await r.trigger()
      samples.push(performance.now() - t0)
      if (report?.result !== 'applied') throw new Error(`full pass: expected applied, got ${report?.result}`)
      for (const [step, ms] of Object.entries(report.timings)) {
        steps[step] = [...(steps[step] ?? []), ms]
      }
    }
    for (const [step, values] of Object.entries(steps)) {
      values.sort((a, b) => a - b)
      ctx.report(`reconcile full pass step ${step} p50`, pct(values, 50), 'ms')
    }
    samples.sort((a, b) => a - b)
    ctx.report(`reconcile full pass ${count} ExternalServices p50 (n=${runs})`, pct(samples, 50), 'ms', {
      target: 1500,
    })
    ctx.report(`reconcile full pass ${count} ExternalServices max`, samples[samples.length - 1] ?? 0, 'ms')
  } finally {
    await r?.stop()
    await server.stop()
    await dir.remove()
  }
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`)
    await new Promise((res) => setTimeout(res, 1))
  }
}

export default async function bench(ctx: BenchContext): Promise<void> {
  await latency(ctx, ctx.smoke ? 3 : 50)
  await fullPass(ctx, ctx.smoke ? 500 : 10_000, ctx.smoke ? 1 : 5)
}
