/**
 * swap-and-idle (issue 15): two egress targets that proxy-throughput does not cover, measured on the built CLI
 * (`node dist/cli/main.js egress --static … --workers W`):
 * - **table swap under load**: a table of `BENCH_SWAP_ROUTES` routes (default 50,000; smoke 1,000) is replaced
 *   (SIGHUP, a new generation with one route changed) every second while 16 client loops open connections through
 *   the egress (ClientHello → upstream answers 1 KiB and closes). Reported: the event-loop time of the swap itself on
 *   a proxying process (routing table + assignment: the workers' `lastSwapMs`, or `lastSwap.ms` with `--workers
 *   1`), the event-loop delay during the swaps (prom-client's `nodejs_eventloop_lag_max_seconds`, max over the
 *   processes: with `--static` the admission runs in a thread of the primary, whose loop with `--workers 1` is the
 *   proxy's; with more workers the primary sends each of them the admitted table), the same delay in as many
 *   windows of the same lengths with the same load and no swap (what the load alone costs the loops on this
 *   machine), the slowest connection the clients saw in each, and failed connections (target 0).
 * - **idle connection memory**: RSS of the egress's process group before and after `BENCH_IDLE_CONNS` (default 2000;
 *   smoke 100) relayed connections are opened and left idle, per connection (target ≤ 10 KB); also after the
 *   first half and for the second half alone (a heap that grows once shows in the first step, a cost per
 *   connection in both), `BENCH_IDLE_SETTLE` s later (default 15), and per process. The baseline is taken once
 *   the egress has been idle for `BENCH_IDLE_SETTLE` s (until 6aad952: 2 s after its start).
 * `npm run build && npm run bench -- swap-and-idle`. Options (environment): `BENCH_SWAP_ROUTES`, `BENCH_IDLE_CONNS`,
 * `BENCH_WORKERS` (default `1,2`), `BENCH_SWAP_CLIENTS` (default 16 client loops during the swaps; 0: the pause of
 * the swaps alone), `BENCH_PARTS` (default `swap,idle`: which of the two measurements to run),
 * `BENCH_CLI` (default `dist/cli/main.js`: another build to measure, e.g. an older commit's, built inside the
 * checkout so that it finds node_modules).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net, { type AddressInfo } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { tableDigest } from '../schemas/digest.js'
import type { TableRoute, ZoneTable } from '../schemas/table.js'
import { clientHello } from './peers/hello.js'
import { repoRoot } from './peers/setup.js'
import type { BenchContext } from './run.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function table(routes: number, generation: number, upstream: number, egressPort: number): ZoneTable {
  const rs: TableRoute[] = Array.from({ length: routes }, (_, i) => ({
    sni: `r-${String(i).padStart(6, '0')}.test`,
    mesh: 'default',
    service: `r-${i}`,
    kind: 'external',
    mode: 'passthrough',
    // route 1's weight follows the generation, so every generation has another digest
    upstreams: [{ address: '127.0.0.1', port: upstream, weight: i === 1 ? generation : 1 }],
  }))
  const egresses = [{ name: 'bench', address: '127.0.0.1', port: egressPort }]
  const body = { zone: 'bench', egresses, routes: rs }
  return {
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    generation,
    revision: `bench@sha1:${generation.toString(16).padStart(40, '0')}`,
    digest: tableDigest(body),
    ...body,
  }
}

/** RSS (bytes) of each process whose process group is `pgid`, by pid. */
function processRss(pgid: number): Map<number, number> {
  const out = new Map<number, number>()
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(f[2]) !== pgid) continue
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${e}/status`, 'utf8'))
      if (m) out.set(Number(e), Number(m[1]) * 1024)
    } catch {}
  }
  return out
}

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

/** One connection: ClientHello for `sni`, read to the upstream's close. Resolves true when 1 KiB came back. */
function oneConnection(port: number, hello: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    let got = 0
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(hello))
    const timer = setTimeout(() => s.destroy(), 10_000)
    s.on('data', (d) => {
      got += d.length
    })
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      resolve(got === 1024)
    })
  })
}

export default async function swapAndIdle(ctx: BenchContext): Promise<void> {
  const cli = process.env.BENCH_CLI ?? join(repoRoot, 'dist', 'cli', 'main.js')
  try {
    readFileSync(cli)
  } catch {
    if (ctx.smoke) {
      console.log('swap-and-idle (smoke): dist/ not built; nothing measured')
      return
    }
    throw new Error('swap-and-idle: run `npm run build` first')
  }
  const routes = Number(process.env.BENCH_SWAP_ROUTES ?? (ctx.smoke ? 1000 : 50_000))
  const idleConns = Number(process.env.BENCH_IDLE_CONNS ?? (ctx.smoke ? 100 : 2000))
  const swaps = ctx.smoke ? 2 : 10
  const workerCounts = (process.env.BENCH_WORKERS ?? '1,2').split(',').map(Number)
  const parts = new Set((process.env.BENCH_PARTS ?? 'swap,idle').split(','))
  const clients = Number(process.env.BENCH_SWAP_CLIENTS ?? 16)
  const settleMs = Number(process.env.BENCH_IDLE_SETTLE ?? (ctx.smoke ? 0.5 : 15)) * 1000
  /** More egress flags, space-separated (e.g. `--data-path net` to measure the net path). */
  const egressArgs = (process.env.BENCH_EGRESS_ARGS ?? '').split(' ').filter((x) => x !== '')
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')
  console.log(`egress: ${cli}${egressArgs.length > 0 ? ` ${egressArgs.join(' ')}` : ''}; load average ${load()}`)
  const dir = mkdtempSync(join(tmpdir(), 'zg-swap-'))
  const held: net.Socket[] = []
  // upstream: answers 1 KiB and closes, except for SNI r-000002.test's idle connections, which it holds
  const payload = Buffer.alloc(1024, 0x78)
  const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {})
    s.once('data', (d) => {
      if (d.includes(Buffer.from('r-000002.test'))) held.push(s)
      else s.end(payload)
    })
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const upPort = (upstream.address() as AddressInfo).port
  const helloLoad = clientHello('r-000000.test')
  const helloIdle = clientHello('r-000002.test')
  /** Starts `egress --static` on a table of `n` routes; resolves once it serves generation 1. */
  const startEgress = async (workers: number, n: number) => {
    const port = await freePort()
    const admin = await freePort()
    const file = join(dir, `table-${workers}-${n}.json`)
    writeFileSync(file, JSON.stringify(table(n, 1, upPort, port)))
    const argv = [cli, 'egress', '--static', file, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${admin}`]
    const child = spawn(process.execPath, [...argv, '--workers', String(workers), '--grace', '1s', ...egressArgs], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, LOG_LEVEL: 'warn' },
    })
    const pgid = child.pid!
    const url = `http://127.0.0.1:${admin}`
    const dump = async () =>
      (await (await fetch(`${url}/config_dump`)).json()) as {
        generation: number | null
        lastSwap: { ms: number } | null
        workers?: { lastSwapMs: number }[]
      }
    const stop = () => {
      try {
        process.kill(-pgid, 'SIGKILL')
      } catch {}
    }
    for (let i = 0; ; i++) {
      if (i > 600) {
        stop()
        throw new Error(`egress --workers ${workers} did not start`)
      }
      if (
        await dump().then(
          (d) => d.generation === 1,
          () => false,
        )
      )
        break
      await sleep(100)
    }
    return { pgid, port, url, file, dump, stop }
  }

  try {
    for (const workers of workerCounts) {
      // table swaps under load
      const e = parts.has('swap') ? await startEgress(workers, routes) : undefined
      if (e)
        try {
          let failed = 0
          let ok = 0
          let running = true
          /** 0: warming up, 1: the swaps, 2: the windows without a swap */
          let measuring = 0
          let slowest = 0
          let slowestBase = 0
          const loops = Array.from({ length: clients }, async () => {
            while (running) {
              const t0 = performance.now()
              if (await oneConnection(e.port, helloLoad)) ok++
              else failed++
              if (measuring === 1) slowest = Math.max(slowest, performance.now() - t0)
              else if (measuring === 2) slowestBase = Math.max(slowestBase, performance.now() - t0)
            }
          })
          await sleep(1000)
          measuring = 1
          let worstSwap = 0
          let generation = 1
          /** The event-loop delay max since the previous scrape (each scrape resets prom-client's histograms). */
          const lagSinceLast = async () => {
            const text = await (await fetch(`${e.url}/stats/prometheus`)).text()
            return Number(/^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text)?.[1]) * 1000
          }
          const lags: number[] = []
          const windows: number[] = []
          for (let k = 0; k < swaps; k++) {
            generation++
            writeFileSync(e.file, JSON.stringify(table(routes, generation, upPort, e.port)))
            await lagSinceLast()
            const w0 = performance.now()
            process.kill(e.pgid, 'SIGHUP')
            // /stats (not /config_dump, which serialises the whole table: until 8353d63 a pause of its own)
            for (let i = 0; ; i++) {
              if (i > 1500) throw new Error(`generation ${generation} not applied`)
              const st = (await (await fetch(`${e.url}/stats`)).json()) as { generation: number | null }
              if (st.generation === generation) break
              await sleep(20)
            }
            await sleep(ctx.smoke ? 100 : 500)
            lags.push(await lagSinceLast())
            windows.push(performance.now() - w0)
            const d = await e.dump()
            worstSwap = Math.max(
              worstSwap,
              d.workers ? Math.max(...d.workers.map((w) => w.lastSwapMs)) : (d.lastSwap?.ms ?? 0),
            )
            await sleep(ctx.smoke ? 100 : 500)
          }
          // The same windows with the same load and the same /stats polling, without a swap: how late the loops are
          // anyway on this machine (on 2 cores, 16 client loops, the upstream and the egress's processes compete)
          const baseline: number[] = []
          measuring = 2
          for (const w of windows) {
            await lagSinceLast()
            const end = performance.now() + w
            while (performance.now() < end) {
              await (await fetch(`${e.url}/stats`)).json()
              await sleep(20)
            }
            baseline.push(await lagSinceLast())
          }
          const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
          const lagMax = Math.max(...lags)
          const lagMedian = median(lags)
          running = false
          await Promise.all(loops)
          ctx.report(`--workers ${workers}: ${routes} routes, swap on a proxy event loop (max)`, worstSwap, 'ms', {
            target: 20,
            note: '(routing table + assignment)',
          })
          ctx.report(`--workers ${workers}: event-loop delay max during swaps`, lagMax, 'ms', {
            note: `${workers === 1 ? '(the one process: admission included)' : '(max over the workers and the primary)'}; median over the ${swaps} swaps ${lagMedian.toFixed(1)} ms, each: ${lags.map((l) => l.toFixed(0)).join(' ')}`,
          })
          ctx.report(`--workers ${workers}: event-loop delay max, same load, no swap`, Math.max(...baseline), 'ms', {
            note: `median over ${baseline.length} windows as long as the swaps' ${median(baseline).toFixed(1)} ms, each: ${baseline.map((l) => l.toFixed(0)).join(' ')}`,
          })
          ctx.report(`--workers ${workers}: slowest connection during swaps`, slowest, 'ms', {
            note: `(client side: ClientHello to the 1 KiB answer and close); ${slowestBase.toFixed(1)} ms in the windows without a swap`,
          })
          ctx.report(`--workers ${workers}: connections during ${swaps} swaps ok / failed`, ok, 'ok', {
            note: `failed ${failed} (target 0)`,
          })
        } finally {
          e.stop()
        }
      if (!parts.has('idle')) continue
      // idle connection memory, on a fresh egress with a small table
      const m = await startEgress(workers, 100)
      try {
        // V8 returns a fresh process's start-up garbage only once it has been idle for a while (its memory
        // reducer): a baseline taken 2 s after the start is high by several MB per process, which then shows as
        // lower per-connection figures if the reducer runs while the connections are opened
        await sleep(settleMs)
        /** The egress's own memory figures (summed over its processes): V8 heap and RSS, from /stats/prometheus. */
        const heap = async () => {
          const text = await (await fetch(`${m.url}/stats/prometheus`)).text()
          const v = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])
          return { total: v('nodejs_heap_size_total_bytes'), used: v('nodejs_heap_size_used_bytes') }
        }
        const heapBefore = await heap()
        const before = processRss(m.pgid)
        const idle: net.Socket[] = []
        /** Opens idle connections up to `n` in all and waits for the upstream to hold them, then 2 s. */
        const openUpTo = async (n: number) => {
          for (let i = idle.length; i < n; i++) {
            const s = net.connect({ host: '127.0.0.1', port: m.port }, () => s.write(helloIdle))
            s.on('error', () => {})
            idle.push(s)
            if (i % 100 === 99) await sleep(20)
          }
          for (let i = 0; held.length < n && i < 300; i++) await sleep(50)
          await sleep(2000)
          return processRss(m.pgid)
        }
        const half = await openUpTo(Math.floor(idleConns / 2))
        const after = await openUpTo(idleConns)
        const heapAfter = await heap()
        await sleep(settleMs)
        const later = processRss(m.pgid)
        const heapLater = await heap()
        const sum = (r: Map<number, number>) => [...r.values()].reduce((a, b) => a + b, 0)
        const kb = (bytes: number, conns: number) => (bytes / 1024 / conns).toFixed(1)
        /** Per process (p: the primary, w: a worker): RSS growth over the connections of a step, KB per connection. */
        const byProcess = (from: Map<number, number>, to: Map<number, number>, conns: number) =>
          [...to]
            .map(([pid, rss]) => `${pid === m.pgid ? 'p' : 'w'} ${kb(rss - (from.get(pid) ?? rss), conns)}`)
            .join(', ')
        const first = Math.floor(idleConns / 2)
        ctx.report(`--workers ${workers}: idle relayed connections held`, held.length, 'conns')
        ctx.report(
          `--workers ${workers}: egress RSS per idle connection`,
          (sum(after) - sum(before)) / 1024 / idleConns,
          'KB',
          {
            target: 10,
            note: `(RSS ${(sum(before) / 2 ** 20).toFixed(1)} → ${(sum(after) / 2 ** 20).toFixed(1)} MiB; by process ${byProcess(before, after, idleConns)})`,
          },
        )
        ctx.report(
          `--workers ${workers}:   first ${first} / next ${idleConns - first} connections`,
          (sum(half) - sum(before)) / 1024 / first,
          'KB',
          {
            note: `/ ${kb(sum(after) - sum(half), idleConns - first)} KB per connection (the second step: what one more connection costs once the heaps have grown; by process ${byProcess(half, after, idleConns - first)})`,
          },
        )
        // RSS outside V8's heap (sockets, handles, buffers: what connections hold) against the heap V8 has reserved
        // (which grows and shrinks with its GC decisions whatever the connections hold)
        const outside = (rss: Map<number, number>, h: { total: number }) => sum(rss) - h.total
        ctx.report(
          `--workers ${workers}:   RSS outside the V8 heaps per connection`,
          (outside(after, heapAfter) - outside(before, heapBefore)) / 1024 / idleConns,
          'KB',
          {
            note: `(${settleMs / 1000} s later ${kb(outside(later, heapLater) - outside(before, heapBefore), idleConns)}); V8 heaps reserved ${kb(heapAfter.total - heapBefore.total, idleConns)} KB per connection (${settleMs / 1000} s later ${kb(heapLater.total - heapBefore.total, idleConns)}), used ${kb(heapAfter.used - heapBefore.used, idleConns)} (later ${kb(heapLater.used - heapBefore.used, idleConns)})`,
          },
        )
        ctx.report(
          `--workers ${workers}:   the same, ${settleMs / 1000} s later`,
          (sum(later) - sum(before)) / 1024 / idleConns,
          'KB',
          {
            note: `(RSS ${(sum(later) / 2 ** 20).toFixed(1)} MiB; by process ${byProcess(before, later, idleConns)})`,
          },
        )
        for (const s of idle) s.destroy()
        for (const s of held.splice(0)) s.destroy()
      } finally {
        m.stop()
      }
    }
  } finally {
    upstream.close()
    rmSync(dir, { recursive: true, force: true })
    console.log(`load average at the end ${load()}`)
  }
}
