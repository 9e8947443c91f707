/**
 * proxy-throughput: the zonegate egress side by side with HAProxy, nginx stream (ssl_preread), a naive Node pipe
 * (node-ref) and direct, on loopback, measured as benchmarks/peers/README.md describes. Method, options and how
 * to run: benchmarks/peers/README.md. `npm run bench -- proxy-throughput` (full run: ~8 min);
 * BENCH_SMOKE=1: every target for 1 s, 1 rep, missing tools skipped with a note.
 */
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { checkProxy, checkRouting } from './peers/checks.js'
import { type GuardOptions, type LoadSetup, measure, WORKLOADS, type Workload } from './peers/measure.js'
import { onInterrupt, type Server, stopAll } from './peers/procs.js'
import { figure, med, renderReport, type TargetResult } from './peers/report.js'
import {
  checkTools,
  guardOf,
  prepareWorkspace,
  readOptions,
  repoRoot,
  startBackend,
  startTarget,
  type TargetName,
  targetPort,
  threadsOf,
} from './peers/setup.js'
import type { BenchContext } from './run.js'

export default async function proxyThroughput(ctx: BenchContext): Promise<void> {
  const opts = readOptions(ctx.smoke)
  const tools = checkTools()
  const missing: string[] = []
  if (!tools.nginx) missing.push('nginx + libnginx-mod-stream (backend and nginx-stream peer)')
  if (!tools.openssl) missing.push('openssl')
  if (!tools.haproxy) missing.push('haproxy')
  if (!tools.wrk) missing.push('wrk')
  if (!tools.gcc) missing.push('gcc + libssl-dev (tlsconn client)')
  if (opts.pin === 'split' && !tools.taskset) missing.push('taskset (util-linux)')
  if (opts.targets.some((t) => t.startsWith('egress')) && !tools.egress && !opts.egressCmd)
    missing.push('zonegate egress (dist/cli/main.js egress: run `npm run build`)')
  if (missing.length > 0 && !opts.smoke)
    throw new Error(`proxy-throughput: missing ${missing.join(', ')}; run \`npm run setup -- --bench\``)
  if (missing.length > 0)
    console.log(`proxy-throughput (smoke): missing ${missing.join(', ')}: those parts are skipped`)
  if (!tools.nginx || !tools.openssl) {
    console.log('proxy-throughput (smoke): no backend possible without nginx and openssl; nothing measured')
    return
  }
  const skip = (t: TargetName): string | undefined =>
    t.startsWith('haproxy') && !tools.haproxy
      ? 'haproxy not installed'
      : t.startsWith('egress') && !tools.egress && !opts.egressCmd
        ? 'egress not built'
        : undefined
  const workloads = WORKLOADS.filter((w) => opts.workloads.includes(w)).filter((w) =>
    w === 'connraw' ? tools.gcc : w === 'conn' ? tools.gcc || tools.wrk : tools.wrk,
  )

  const ws = await prepareWorkspace(opts, tools)
  if (process.env.BENCH_KEEP !== '1') onInterrupt(() => rmSync(ws.dir, { recursive: true, force: true }))
  const ncpu = cpus().length
  const la = () =>
    loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')
  const loadStart = la()
  const runId = `${new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${opts.pin}${opts.smoke ? '-smoke' : ''}`
  console.log(`proxy-throughput: run ${runId}, temp ${ws.dir}, ports from ${ws.ports.backendA - 1}`)
  const results: TargetResult[] = opts.targets.map((name) => ({
    name,
    threads: threadsOf(name),
    workloads: {},
    ...(skip(name) ? { skipped: skip(name) } : {}),
  }))
  const servers = new Map<string, Server | undefined>()
  try {
    const backend = await startBackend(ws, opts)
    for (const t of results.filter((r) => !r.skipped)) {
      servers.set(t.name, await startTarget(t.name as TargetName, ws, opts))
      const port = targetPort(t.name as TargetName, ws.ports)
      t.checks =
        t.name === 'direct'
          ? { ...(await checkRouting({ a: ws.ports.backendA, b: ws.ports.backendB }, ws.ports.raw)), ...noRejection() }
          : await checkProxy(port)
    }
    const load: LoadSetup = {
      dir: ws.dir,
      tlsconn: ws.tlsconn,
      helloFile: ws.helloFile,
      luaFile: ws.luaFile,
      cpu: opts.pin === 'split' ? 0 : undefined,
      conns: opts.conns,
    }
    const guard = guardOf(opts, ncpu)
    const noGuard: GuardOptions = { ...guard, retries: 0, quietWaitMs: 0 }
    const active = results.filter((r) => !r.skipped)
    const portFor = (t: TargetResult, w: Workload) =>
      t.name === 'direct' && w === 'connraw' ? ws.ports.raw : targetPort(t.name as TargetName, ws.ports)
    const pg = (t: TargetResult) => ({ proxy: servers.get(t.name)?.pgid, backend: backend.pgid })
    for (const w of workloads) {
      if (opts.warmup > 0) for (const t of active) await measure(w, portFor(t, w), opts.warmup, load, pg(t), noGuard)
      // Interleaved passes: slow drifts (neighbours on the shared box) hit every target alike.
      for (let rep = 0; rep < opts.reps; rep++) {
        for (const t of active) {
          const s = await measure(w, portFor(t, w), opts.duration, load, pg(t), guard)
          t.workloads[w] = [...(t.workloads[w] ?? []), s]
          const unit = w === 'bulk' ? 'MB/s' : '/s'
          console.log(
            `  ${w.padEnd(7)} ${t.name.padEnd(12)} rep ${rep + 1}: ${figure(w, s, 'rate').toFixed(0)}${unit} p50 ${s.p50.toFixed(2)} ms, proxy ${figure(w, s, 'cpuPct').toFixed(0)}% cpu, errors ${s.errors}, other ${s.otherPct.toFixed(1)}%, steal ${s.stealPct.toFixed(1)}%${s.retries ? ` (retries ${s.retries})` : ''}`,
          )
        }
      }
    }
    const notes = [
      `${ctx.env}; pin ${opts.pin}${opts.pin === 'split' ? ' (1-thread targets alone on CPU 1, load and backend on CPU 0; 2-thread targets unpinned)' : ''}; ${opts.duration} s × ${opts.reps} reps per workload (median), warm-up ${opts.warmup} s per target; conn -c ${opts.conns.conn}, ka -c ${opts.conns.ka}, bulk -c ${opts.conns.bulk}; load average (1/5/15 min) at start ${loadStart}, at end ${la()}`,
      `conn/connraw via ${ws.tlsconn ? 'tlsconn (C, benchmarks/peers/tlsconn.c)' : 'wrk with Connection: close (latency excludes connect)'}; ka/bulk via wrk; tools: ${Object.values(tools.versions).join('; ')}`,
    ]
    const md = renderReport(results, { title: `proxy-throughput ${runId}`, notes })
    console.log(`\n${md}`)
    const outDir = join(repoRoot, 'benchmarks', 'results', runId)
    mkdirSync(outDir, { recursive: true })
    for (const f of [
      'backend.conf',
      'haproxy.cfg',
      'haproxy-2.cfg',
      'nginx-stream.conf',
      'nginx-stream-2.conf',
      'routes.json',
      'table.json',
    ])
      cpSync(join(ws.dir, f), join(outDir, f))
    writeFileSync(
      join(outDir, 'summary.json'),
      `${JSON.stringify({ runId, env: ctx.env, options: opts, tools, ports: ws.ports, results }, null, 2)}\n`,
    )
    writeFileSync(join(outDir, 'report.md'), md)
    console.log(`proxy-throughput: raw results in ${outDir}`)
    for (const t of active) {
      for (const w of workloads) {
        const unit = w === 'bulk' ? 'MB/s' : w === 'ka' ? 'req/s' : 'conn/s'
        ctx.report(`${t.name} ${w}`, med(t, w, 'rate'), unit)
      }
      if (t.name !== 'direct' && workloads.includes('connraw')) {
        ctx.report(`${t.name} CPU per raw conn`, med(t, 'connraw', 'cpuUnit'), 'µs')
        ctx.report(`${t.name} raw conn per core`, 1e6 / med(t, 'connraw', 'cpuUnit'), 'conn/CPU-s')
      }
    }
  } finally {
    await stopAll()
    if (process.env.BENCH_KEEP !== '1') rmSync(ws.dir, { recursive: true, force: true })
  }
}

function noRejection() {
  const none = { closed: 0, tries: 0, slowestMs: 0, answers: [] }
  return { unknownSni: none, noSni: none, nonTls: none }
}
