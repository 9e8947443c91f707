import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { connect } from '@nats-io/transport-node'
import { pino } from 'pino'
import { type AdmissionPhases, admit } from '../egress/core/admission.js'
import { CompactZoneTable } from '../egress/core/compact-table.js'
import { RoutingTable } from '../egress/core/routing-table.js'
import { createPassDeps } from '../reconciler/pass-deps.js'
import { initialPassState } from '../reconciler/pass-state.js'
import { publishStep } from '../reconciler/steps/publish-step.js'
import { diffStep } from '../reconciler/steps/steps.js'
import type { PassContext } from '../reconciler/steps/types.js'
import { connectBus, ensureNatsLayout } from '../reconciler/transport/nats-bus.js'
import { publishZoneTable } from '../reconciler/transport/nats-publisher.js'
import type { RolloutAppliedEvent } from '../schemas/events.js'
import { generateSigningKey, loadSigningKey, signTable } from '../schemas/signing.js'
import { rolloutSubjects, tableKey } from '../schemas/subjects.js'
import { encodeTableBody, type TableHead } from '../schemas/table-transport.js'
import { largeTable } from '../test/helpers/large-table.js'
import { startNatsCluster } from '../test/helpers/nats-cluster.js'
import { freePort, type RunningProcess, readProcfile, startProcess, waitForOutput } from '../test/helpers/procfile.js'
import type { BenchContext } from './run.js'

/**
 * large-table: a 100,000-route zone table (≈17 MB of JSON) through the real data path on a 3-node nats-server
 * cluster with R3 buckets: `publishZoneTable` (gzip + object store body + KV head with CAS), three `zonegate
 * egress` processes (built CLI) fetch, verify, admit and swap it. Two generations are published (the second
 * swaps a full table for a full table). Figures:
 * - publish time (reconciler side: JSON + gzip + object store put + KV CAS), bytes stored (compressed) and
 *   bytes of the JSON; bytes on the wire to the egresses ≈ 3 × stored + heads;
 * - full pass: publish start → the last of the 3 egresses reports `applied` (target ≤ 3 s);
 * - swap on the event loop: `swapMs` from the egresses' applied events (routing table over the compact routes +
 *   assign; target ≤ 50 ms); admission (decode, parse, schema, digest, compact routes) runs in the egress's
 *   worker thread (decision 012), its stages are measured in this process on the same table;
 * - egress RSS after the swap (and 2 s later, with V8's external memory and used heap from the egress's own
 *   metrics) and peak (VmHWM) from /proc (target ≤ 150 MB), and the egress's CPU time for the table (all threads,
 *   /proc/<pid>/stat), which depends less on a shared machine's load than times;
 * - the reconciler's pass steps diff (plan, and the size of each changed table) and publish on one 100,000-route
 *   zone of its own, per generation.
 * BENCH_LARGE_GENERATIONS: how many generations (default 2; more: more full → full swaps).
 * Smoke (BENCH_SMOKE=1): 10,000 routes (still over max_payload, so the object path runs), one generation.
 */
const N_FULL = 100_000
const N_SMOKE = 10_000

const procMb = (pid: number, field: 'VmRSS' | 'VmHWM') => {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : Number.NaN
}
/** CPU time (user + system, all threads) of a process so far, in ms. */
const procCpuMs = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100
}

export default async function bench(ctx: BenchContext): Promise<void> {
  const n = ctx.smoke ? N_SMOKE : N_FULL
  // BENCH_LARGE_GENERATIONS: more full → full swaps (default 2)
  const generations = ctx.smoke ? 1 : Number(process.env.BENCH_LARGE_GENERATIONS ?? 2)
  const log = pino({ level: 'silent' })
  const cluster = await startNatsCluster()
  const stateRoot = await mkdtemp(join(tmpdir(), 'zonegate-bench-large-'))
  const egresses: { proc: RunningProcess; admin: string }[] = []
  const bus = await connectBus({ servers: cluster.urls, name: 'bench-large', log })
  const nc = await connect({ servers: cluster.urls })
  try {
    await ensureNatsLayout(bus)
    const entry = readProcfile().find((p) => p.name === 'egress')!
    for (let i = 1; i <= 3; i++) {
      const port = await freePort()
      const adminPort = await freePort()
      const proc = startProcess(entry, {
        port,
        instance: i,
        replace: {
          '127.0.0.1:$((PORT + 50))': `127.0.0.1:${adminPort}`,
          '.data/egress/zone-a': join(stateRoot, `e${i}`),
          '--nats nats://127.0.0.1:4222': cluster.urls.map((u) => `--nats ${u}`).join(' '),
          // the bench's cluster runs without auth and writes unsigned tables: no token, no trusted key
          ' --creds .data/auth/zone-a-egress.creds --trusted-key "$(cat .data/auth/table-signing.pub)"': '',
        },
        args: ['--instance', `e${i}`, '--grace', '1s'],
        // BENCH_EGRESS_LOG=debug: the egresses' timeline of each generation is printed (head, fetch, admission)
        env: { LOG_LEVEL: process.env.BENCH_EGRESS_LOG ?? 'info' },
      })
      egresses.push({ proc, admin: `http://127.0.0.1:${adminPort}` })
    }
    for (const e of egresses) await waitForOutput(e.proc, /nats connected/, 30_000)
    const applied: (RolloutAppliedEvent & { at: number })[] = []
    const sub = nc.subscribe(rolloutSubjects('zone-a'), {
      callback: (_e, m) => {
        const ev = m.json<RolloutAppliedEvent>()
        if (ev.type === 'rollout.applied') applied.push({ ...ev, at: performance.now() })
      },
    })
    await nc.flush()
    let kvRev = 0
    for (let g = 1; g <= generations; g++) {
      const table = largeTable(n, { generation: g, salt: g === 1 ? '' : `-g${g}` })
      const json = Buffer.byteLength(JSON.stringify(table))
      const cpu0 = egresses.map((e) => procCpuMs(e.proc.pid))
      const t0 = performance.now()
      kvRev = await publishZoneTable(bus, table, kvRev)
      const published = performance.now() - t0
      // direct gets may be answered by a replica that has not applied the write yet: read until it has
      let entry = await bus.kv.tables.get(tableKey('zone-a'))
      while (!entry || entry.revision < kvRev) {
        await new Promise((r) => setTimeout(r, 20))
        entry = await bus.kv.tables.get(tableKey('zone-a'))
      }
      const head = entry.json<TableHead>()
      const deadline = Date.now() + 120_000
      while (applied.filter((a) => a.generation === g).length < 3) {
        if (Date.now() > deadline) throw new Error(`generation ${g}: not applied by 3 egresses within 120 s`)
        await new Promise((r) => setTimeout(r, 20))
      }
      const mine = applied.filter((a) => a.generation === g)
      if (process.env.BENCH_EGRESS_LOG) {
        console.log(`  applied events at +${mine.map((a) => Math.round(a.at - t0)).join(', ')} ms`)
        const wall0 = Date.now() - (performance.now() - t0)
        for (const [i, e] of egresses.entries())
          for (const line of e.proc.output().split('\n')) {
            const m = /"time":"([^"]+)".*"msg":"([^"]*)"/.exec(line)
            const at = m ? Date.parse(m[1]!) : Number.NaN
            if (m && at >= wall0 - 100)
              console.log(`  egress ${i + 1} +${at - Math.round(wall0)} ms ${m[2]} ${line.length > 400 ? '' : line}`)
          }
      }
      const last = Math.max(...mine.map((a) => a.at)) - t0
      const swap = Math.max(...mine.map((a) => a.swapMs))
      const label = `gen ${g}${g > 1 ? ' (full → full)' : ''}`
      ctx.report(`${label}: publish (gzip + object put + KV CAS)`, published, 'ms')
      ctx.report(`${label}: table JSON`, json / 1e6, 'MB')
      ctx.report(`${label}: stored body (gzip) = bytes per egress fetch`, (head.object?.storedSize ?? 0) / 1e6, 'MB')
      ctx.report(`${label}: full pass, publish → 3 egresses applied`, last, 'ms', { target: 3000 })
      ctx.report(`${label}: swap on the egress event loop (max of 3)`, swap, 'ms', { target: 50 })
      const rss = egresses.map((e) => procMb(e.proc.pid, 'VmRSS'))
      const cpu = egresses.map((e, i) => procCpuMs(e.proc.pid) - cpu0[i]!)
      await new Promise((r) => setTimeout(r, 2000))
      for (const [i, e] of egresses.entries()) {
        // V8's view 2 s later: ArrayBuffers (the compact routes) and the JS heap, from the egress's own metrics
        const prom = await (await fetch(`${e.admin}/stats/prometheus`)).text()
        const promMb = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(prom)?.[1]) / 1e6
        ctx.report(`${label}: egress ${i + 1} RSS after swap / peak`, rss[i]!, 'MB', {
          target: 150,
          note:
            `peak ${procMb(e.proc.pid, 'VmHWM').toFixed(1)} MB, 2 s later ${procMb(e.proc.pid, 'VmRSS').toFixed(1)} MB ` +
            `(external ${promMb('nodejs_external_memory_bytes').toFixed(1)} MB, ` +
            `heap used ${promMb('nodejs_heap_size_used_bytes').toFixed(1)} MB)`,
        })
        ctx.report(`${label}: egress ${i + 1} CPU (all threads) for this table`, cpu[i]!, 'ms')
      }
    }
    sub.unsubscribe()
    // The admission stages (what the egress's worker thread does), and what is left for the event loop, measured
    // here on the same table in one process; then the same with a signed table and a trusted key.
    const table = largeTable(n, { generation: 9 })
    const e0 = performance.now()
    const json = JSON.stringify(table)
    const e1 = performance.now()
    const { head, body } = encodeTableBody(json, table, { bucket: 'b', name: 'zone-a.table.9' })
    const e2 = performance.now()
    ctx.report('reconciler: JSON.stringify of the envelope', e1 - e0, 'ms')
    ctx.report('reconciler: gzip + sha256 of the body', e2 - e1, 'ms')
    const phases: Partial<AdmissionPhases> = {}
    const a0 = performance.now()
    const out = admit({ kind: 'body', head, bytes: body, zone: 'zone-a' }, phases)
    const a1 = performance.now()
    if (!out.ok) throw new Error(`bench table not admitted: ${out.problems.join('; ')}`)
    const rt = new RoutingTable(new CompactZoneTable(out.meta, out.compact))
    const a2 = performance.now()
    if (rt.size !== table.routes.length || !rt.lookup(table.routes[7]!.sni)) throw new Error('routing table')
    ctx.report('worker: decode (sha256 + gunzip + JSON.parse)', phases.decode ?? Number.NaN, 'ms')
    ctx.report('worker: checks (schema + zone + unique SNIs)', phases.check ?? Number.NaN, 'ms')
    ctx.report('worker: canonical JSON of the routes + compact routes', phases.compact ?? Number.NaN, 'ms')
    ctx.report('worker: digest', phases.digest ?? Number.NaN, 'ms')
    ctx.report('worker: whole admission', a1 - a0, 'ms')
    ctx.report('event loop: routing table over the compact routes', a2 - a1, 'ms', { target: 50 })
    const c = out.compact
    ctx.report(
      'compact routes held (JSON + SNIs + index)',
      (c.json.byteLength + c.sni.byteLength + c.slots.byteLength + 2 * c.jsonOff.byteLength) / 1e6,
      'MB',
    )
    const key = generateSigningKey()
    const signed = signTable(table, loadSigningKey(key.seed))
    const sjson = JSON.stringify(signed)
    const sbody = encodeTableBody(sjson, signed, { bucket: 'b', name: 'zone-a.table.9' })
    const sphases: Partial<AdmissionPhases> = {}
    const s0 = performance.now()
    const sout = admit(
      { kind: 'body', head: sbody.head, bytes: sbody.body, zone: 'zone-a', trustedKeys: [key.publicKey] },
      sphases,
    )
    const s1 = performance.now()
    if (!sout.ok) throw new Error('signed bench table not admitted')
    ctx.report('worker, signed table: digest + signature check', sphases.digest ?? Number.NaN, 'ms')
    ctx.report('worker, signed table: whole admission', s1 - s0, 'ms')

    // The reconciler's pass steps on one 100,000-route zone that no egress here serves: diff (plan, and the size
    // of each changed table measured) then publish (object store body, KV head, events), two generations.
    const deps = createPassDeps({
      opts: { branch: 'main', allowEmpty: false, defaultZone: 'default' },
      source: undefined as never, // diff and publish do not read the source
      bus,
      log,
    })
    const state = { ...initialPassState(), inventory: new Map() }
    for (let g = 1; g <= generations; g++) {
      const { generation: _g, revision: _r, ...unpublished } = largeTable(n, { zone: 'zone-pass', salt: `-p${g}` })
      const sha = String(g).repeat(40)
      const pass: PassContext = {
        deps,
        state,
        hooks: { signal: new AbortController().signal, fetched: () => {}, publishing: () => {} },
        log,
        sha,
        revision: `main@sha1:${sha}`,
        tables: [unpublished],
      }
      const p0 = performance.now()
      const diffed = await diffStep(pass)
      const p1 = performance.now()
      const published = await publishStep(pass)
      const p2 = performance.now()
      if ('error' in diffed || 'error' in published) throw new Error('bench pass steps failed')
      ctx.report(`reconciler pass, gen ${g}: diff step (plan + size of the table)`, p1 - p0, 'ms')
      ctx.report(`reconciler pass, gen ${g}: publish step (body, head, events)`, p2 - p1, 'ms')
      ctx.report(`reconciler pass, gen ${g}: diff + publish`, p2 - p0, 'ms')
    }
  } finally {
    await nc.close().catch(() => {})
    await bus.close().catch(() => {})
    await Promise.all(egresses.map((e) => e.proc.stop(3000)))
    await cluster.stop()
    await rm(stateRoot, { recursive: true, force: true })
  }
}
