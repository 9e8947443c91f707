/**
 * Soak (not part of the test suite nor of `npm run bench -- all`): the Procfile system — `zonegate reconciler`,
 * three zone-a egresses and one zone-b egress, the TLS demo upstreams — on a real 3-node nats-server cluster
 * (R3 layout), for `--minutes M` (default 10), with
 * - steady traffic: `--workers W` (default 4) loops each opening a TLS connection through a zone-a egress (round
 *   robin over the three) with SNI `billing{mesh=default}` (cross-zone, to zone-b's ingress) and closing it once the upstream completed the
 *   handshake, plus 6 long-lived connections held for the whole run (each must stay open across every swap);
 * - a commit every `--commit-every S` seconds (default 5) that changes zone-a's table (the weight of a
 *   cross-zone route), each followed until `zonegate.events.commit.<sha>.converged`.
 * It reports failed connections (target 0), long-lived connections lost (target 0), rollout latency commit →
 * converged p50/p99, commits that did not converge, and the RSS of every process sampled every 30 s (target:
 * flat), and writes the figures into benchmarks/RESULTS.md between the `soak` markers.
 *
 *   npm run build && npx tsx benchmarks/soak.ts [--minutes 10] [--workers 4] [--commit-every 5] [--no-write]
 */
import { execSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { commitSubject } from '../schemas/subjects.js'
import { type OpenConnection, openTls, type System, startSystem } from '../test/e2e/system.js'
import { type NatsCluster, startNatsCluster } from '../test/helpers/nats-cluster.js'
import { repoRoot } from '../test/helpers/procfile.js'
import { stealMeter } from './peers/cpu.js'

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    workers: { type: 'string', default: '4' },
    'commit-every': { type: 'string', default: '5' },
    'no-write': { type: 'boolean', default: false },
  },
})
const minutes = Number(values.minutes)
const workers = Number(values.workers)
const commitEveryMs = Number(values['commit-every']) * 1000
const SNI = 'billing{mesh=default}'
const INGRESS_B = 'zones/zone-b/zone-ingresses/ingress-1.yaml'
const SAMPLE_MS = 30_000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
const rssMb = (pid: number) => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : Number.NaN
  } catch {
    return Number.NaN
  }
}

async function main() {
  const started = new Date()
  const loadStart = loadavg()[0]!
  const stolen = stealMeter(cpus().length)
  let cluster: NatsCluster | undefined
  let sys: System | undefined
  const stopAll = async () => {
    await sys?.stop().catch(() => {})
    await cluster?.stop().catch(() => {})
  }
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)))
  try {
    cluster = await startNatsCluster()
    sys = await startSystem({
      cluster,
      egresses: [
        { zone: 'zone-a', instance: 's1' },
        { zone: 'zone-a', instance: 's2' },
        { zone: 'zone-a', instance: 's3' },
        { zone: 'zone-b', instance: 's4' },
      ],
      interval: '30s',
      reconcilerArgs: ['--rollout-timeout', '30s'],
      egressArgs: ['--grace', '1s'],
    })
    const s = sys
    const zoneA = s.egresses.filter((e) => e.zone === 'zone-a')
    const procs: { name: string; pid: number }[] = [
      ...cluster.nodes.map((n) => ({ name: `nats ${n.name}`, pid: n.pid ?? -1 })),
      { name: 'reconciler', pid: s.reconciler.pid },
      ...s.egresses.map((e) => ({ name: `egress ${e.zone} ${e.instance}`, pid: e.proc.pid })),
      ...[...s.upstreams].map(([name, u]) => ({ name: `upstream ${name}`, pid: u.proc.pid })),
    ]
    const replicas = (await (await import('@nats-io/jetstream')).jetstreamManager(s.nc)).streams
    const r3 = (await replicas.info('KV_zonegate-tables')).config.num_replicas

    const deadline = Date.now() + minutes * 60_000
    let ok = 0
    let failed = 0
    const failures: string[] = []
    const loops = Array.from({ length: workers }, async (_, w) => {
      let i = w
      while (Date.now() < deadline) {
        const e = zoneA[i++ % zoneA.length]!
        try {
          const c = await openTls(e.port, SNI)
          c.socket.destroy()
          ok++
        } catch (err) {
          failed++
          if (failures.length < 20)
            failures.push(`${new Date().toISOString()} ${e.instance}: ${(err as Error).message}`)
        }
        await sleep(20)
      }
    })
    const held: OpenConnection[] = []
    for (let i = 0; i < 6; i++) held.push(await openTls(zoneA[i % 3]!.port, SNI))
    let heldLost = 0
    for (const h of held) void h.closed.then(() => Date.now() < deadline && heldLost++)

    const converged = new Map<string, number>()
    const sub = s.nc.subscribe(commitSubject('*', 'converged'), {
      callback: (_e, m) => {
        converged.set(m.subject.split('.')[3]!, Date.now())
      },
    })
    const ingress = s.repo.files.get(INGRESS_B)
    if (!ingress?.includes('instances: 3')) throw new Error(`${INGRESS_B}: expected instances: 3`)
    const commits: { sha: string; at: number }[] = []
    const committer = (async () => {
      let k = 0
      while (Date.now() < deadline - commitEveryMs) {
        const text = ingress.replace('instances: 3', `instances: ${2 + (k++ % 2)}`)
        const at = Date.now()
        commits.push({ sha: await s.commit({ [INGRESS_B]: text }, `soak ${k}`), at })
        await sleep(commitEveryMs)
      }
    })()
    const samples: { t: number; rss: number[] }[] = []
    const sampler = (async () => {
      while (Date.now() < deadline) {
        samples.push({ t: Date.now(), rss: procs.map((p) => rssMb(p.pid)) })
        await sleep(Math.min(SAMPLE_MS, Math.max(0, deadline - Date.now())))
      }
      samples.push({ t: Date.now(), rss: procs.map((p) => rssMb(p.pid)) })
    })()
    await Promise.all([...loops, committer, sampler])
    await sleep(5000) // the last rollouts
    sub.unsubscribe()
    for (const h of held) h.socket.destroy()

    const lat = commits
      .filter((c) => converged.has(c.sha))
      .map((c) => converged.get(c.sha)! - c.at)
      .sort((a, b) => a - b)
    const notConverged = commits.length - lat.length
    const rows = procs.map((p, i) => {
      const series = samples.map((x) => x.rss[i]!).filter((v) => !Number.isNaN(v))
      const first = series[0] ?? Number.NaN
      const last = series.at(-1) ?? Number.NaN
      // compare the last third with the second third: growth after warm-up
      const third = Math.max(1, Math.floor(series.length / 3))
      const mid = series.slice(third, 2 * third)
      const tail = series.slice(2 * third)
      const avg = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length)
      const drift = mid.length > 0 && tail.length > 0 ? avg(tail) - avg(mid) : last - first
      return { name: p.name, first, max: Math.max(...series), last, drift }
    })
    const commit = execSync('git rev-parse --short HEAD', { cwd: repoRoot }).toString().trim()
    const steal = stolen()
    const lines = [
      '<!-- soak:begin -->',
      `### Soak: ${minutes} min, 3-node nats-server cluster (R${r3}), 3 + 1 egresses, ${workers} connection loops, a commit every ${commitEveryMs / 1000} s`,
      '',
      `Run ${started.toISOString()} at commit ${commit}, node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}.`,
      `Load average ${loadStart.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end${steal === undefined ? '' : `; steal (CPU the hypervisor gave to other guests) ${steal.toFixed(1)} % of the machine over the run`}.`,
      'Latencies depend on what else the machine runs; counts (failed, lost) and RSS drift do not. Command: `npm run build && npx tsx benchmarks/soak.ts`.',
      '',
      '| figure | value | target |',
      '|---|---|---|',
      `| connections opened and completed | ${ok} | |`,
      `| failed connections | **${failed}** | 0 |`,
      `| long-lived connections lost (6 held for the whole run) | **${heldLost}** | 0 |`,
      `| commits / converged / not converged | ${commits.length} / ${lat.length} / ${notConverged} | all converge |`,
      `| rollout latency commit → converged p50 / p99 | ${pct(lat, 50)} / ${pct(lat, 99)} ms | |`,
      '',
      `RSS per process (MB), sampled every ${SAMPLE_MS / 1000} s (${samples.length} samples); drift = mean of the last third minus mean of the middle third:`,
      '',
      '| process | first | max | last | drift |',
      '|---|---|---|---|---|',
      ...rows.map(
        (r) =>
          `| ${r.name} | ${r.first.toFixed(1)} | ${r.max.toFixed(1)} | ${r.last.toFixed(1)} | ${r.drift >= 0 ? '+' : ''}${r.drift.toFixed(1)} |`,
      ),
      ...(failures.length > 0 ? ['', 'First failures:', '', ...failures.map((f) => `- ${f}`)] : []),
      '<!-- soak:end -->',
    ]
    const section = lines.join('\n')
    console.log(section)
    if (!values['no-write']) {
      const file = join(repoRoot, 'benchmarks/RESULTS.md')
      const text = readFileSync(file, 'utf8')
      const re = /<!-- soak:begin -->[\s\S]*?<!-- soak:end -->/
      writeFileSync(file, re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`)
    }
    if (failed > 0 || heldLost > 0 || notConverged > 0) process.exitCode = 1
  } finally {
    await stopAll()
  }
}

await main()
