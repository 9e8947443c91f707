/**
 * mtls: terminate-mtls through the zonegate egress side by side with HAProxy doing the same work, in one run
 * on loopback: the caller presents a mesh workload certificate (ECDSA P-256, SAN spiffe://default/web, ALPN
 * kuma), the proxy terminates TLS with its zone-egress identity, verifies the client against the mesh CA,
 * then originates TLS to the backend nginx (SNI a.test, verified against the backend's certificate only).
 * Workloads (tlsconn, benchmarks/peers/tlsconn.c with -C/-K/-A): `hs` = new connection per request
 * (handshake + GET /small), the handshake rate; `bulk` = new connection per GET /large (10 MiB), the relayed
 * throughput. Proxies pinned alone on CPU 1 (as proxy-throughput's `split`), client and backend on CPU 0.
 * The egress runs `--static table.json --state-dir DIR` with its identity placed in DIR as the NATS mode would
 * have saved it. `npm run bench -- mtls`; BENCH_SMOKE=1: 1 s per run, 1 rep.
 */
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { certFile, keyFile } from '../egress/identity/identity-store.js'
import { tableDigest } from '../schemas/digest.js'
import type { ZoneTable } from '../schemas/table.js'
import { groupTicks, stealMeter, TICKS_PER_SECOND } from './peers/cpu.js'
import { waitQuietWithinBudget } from './peers/measure.js'
import { onInterrupt, pinned, runMeasured, type Server, startServer, stopAll, stopServer } from './peers/procs.js'
import { checkTools, guardOf, prepareWorkspace, readOptions, repoRoot, startBackend } from './peers/setup.js'
import type { BenchContext } from './run.js'

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })

/** An ECDSA P-256 certificate signed by `ca` (or self-signed CA when `ca` is undefined), with `ext` lines. */
function issue(dir: string, name: string, subject: string, ext: string, ca?: string): void {
  const key = join(dir, `${name}.key`)
  const crt = join(dir, `${name}.crt`)
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key])
  writeFileSync(join(dir, `${name}.ext`), `${ext}\n`)
  if (ca === undefined) {
    openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      key,
      '-subj',
      subject,
      '-days',
      '2',
      '-out',
      crt,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    ])
    return
  }
  const csr = join(dir, `${name}.csr`)
  openssl(['req', '-new', '-key', key, '-subj', subject, '-out', csr])
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    join(dir, `${ca}.crt`),
    '-CAkey',
    join(dir, `${ca}.key`),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    join(dir, `${name}.ext`),
    '-out',
    crt,
  ])
}

interface Figures {
  rate: number
  p50: number
  p99: number
  mbps: number
  errors: number
  cpuUs: number
  cpuPct: number
}

export default async function mtls(ctx: BenchContext): Promise<void> {
  const opts = readOptions(ctx.smoke)
  const tools = checkTools()
  const missing = (['nginx', 'openssl', 'haproxy', 'gcc', 'egress'] as const).filter((t) => !tools[t])
  if (missing.length > 0) {
    if (!ctx.smoke)
      throw new Error(`mtls: missing ${missing.join(', ')}; run \`npm run setup -- --bench\` and \`npm run build\``)
    console.log(`mtls (smoke): missing ${missing.join(', ')}; nothing measured`)
    return
  }
  const ws = await prepareWorkspace(opts, tools)
  if (!ws.tlsconn) throw new Error('mtls: tlsconn did not compile')
  if (process.env.BENCH_KEEP !== '1') onInterrupt(() => rmSync(ws.dir, { recursive: true, force: true }))
  const c = join(ws.dir, 'mtls')
  mkdirSync(c)
  issue(c, 'mesh-ca', '/CN=default mesh CA', '')
  issue(
    c,
    'egress',
    '/CN=zone-egress',
    'subjectAltName=URI:spiffe://default/zone-egress,URI:kuma://kuma.io/service/zone-egress',
    'mesh-ca',
  )
  issue(c, 'web', '/CN=web', 'subjectAltName=URI:spiffe://default/web\nextendedKeyUsage=clientAuth', 'mesh-ca')
  const read = (f: string) => readFileSync(join(c, f), 'utf8')
  const backendCa = readFileSync(join(ws.dir, 'certs', 'a.test.crt'), 'utf8')
  writeFileSync(join(c, 'egress.pem'), read('egress.crt') + read('egress.key'))

  // the egress: static table with one terminate-mtls route, identity saved in its state dir
  const sni = 'a-api{mesh=default}'
  const body = {
    zone: 'bench',
    egresses: [{ name: 'ze-bench', address: '127.0.0.1', port: ws.ports.egress }],
    routes: [
      {
        sni,
        mesh: 'default',
        service: 'a-api',
        kind: 'external' as const,
        mode: 'terminate-mtls' as const,
        allow: ['web'],
        upstreams: [
          {
            address: '127.0.0.1',
            port: ws.ports.backendA,
            weight: 1,
            tls: { enabled: true, serverName: 'a.test', caCert: backendCa },
          },
        ],
      },
    ],
  }
  const meshes = [{ name: 'default', caCerts: [read('mesh-ca.crt')] }]
  const table: ZoneTable = {
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    generation: 1,
    revision: `bench@sha1:${'0'.repeat(40)}`,
    digest: tableDigest({ ...body, meshes }),
    ...body,
    meshes,
  }
  writeFileSync(join(c, 'table.json'), JSON.stringify(table))
  const state = join(c, 'state')
  mkdirSync(state, { mode: 0o700 })
  writeFileSync(keyFile(state, 'bench', 'ze-bench'), read('egress.key'), { mode: 0o600 })
  const x = new X509Certificate(read('egress.crt'))
  writeFileSync(
    certFile(state, 'bench', 'ze-bench', 'default'),
    JSON.stringify({
      mesh: 'default',
      cert: read('egress.crt'),
      caCerts: [read('mesh-ca.crt')],
      notBefore: Date.parse(x.validFrom),
      notAfter: Date.parse(x.validTo),
      serial: x.serialNumber,
    }),
    { mode: 0o600 },
  )

  // HAProxy: the same termination (mesh identity, client verified against the mesh CA, ALPN kuma), TLS to the
  // backend verified against its certificate with the exact name. HAProxy 2.6 cannot read a URI SAN, so it
  // does not check the spiffe id or the allow list: it does slightly less work than the egress.
  writeFileSync(
    join(c, 'haproxy.cfg'),
    `global
  nbthread 1
  maxconn 8000
  # like the egress: no session tickets and no session cache, so no resumption and no ticket work per handshake
  tune.ssl.cachesize 0
  pidfile ${c}/haproxy.pid
  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
defaults
  mode tcp
  timeout connect 3s
  timeout client 30s
  timeout server 30s
frontend mesh
  bind 127.0.0.1:${ws.ports.haproxy} ssl crt ${c}/egress.pem ca-file ${c}/mesh-ca.crt verify required alpn kuma
  tcp-request content reject unless { ssl_fc_sni -i ${sni} }
  default_backend a
backend a
  server a 127.0.0.1:${ws.ports.backendA} ssl verify required ca-file ${ws.dir}/certs/a.test.crt sni str(a.test) verifyhost a.test
`,
  )
  const proxyCpu = opts.pin === 'split' ? 1 : undefined
  const servers = new Map<string, Server>()
  const results = new Map<string, Record<string, Figures[]>>()
  try {
    await startBackend(ws, opts)
    servers.set(
      'haproxy',
      await startServer('haproxy-mtls', pinned(proxyCpu, ['haproxy', '-db', '-f', join(c, 'haproxy.cfg')]), {
        logDir: join(ws.dir, 'logs'),
        port: ws.ports.haproxy,
      }),
    )
    const startEgress = async (name: string, port: number, nodeArgs: string[], stateDir: string) => {
      servers.set(
        name,
        await startServer(
          name === 'egress' ? 'egress-mtls' : `egress-mtls-${name}`,
          pinned(proxyCpu, [
            'node',
            ...(opts.egressProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.egressProfDir}`] : []),
            // extra node flags for profiling, e.g. BENCH_EGRESS_NODE_ARGS=--perf-basic-prof for `perf record`
            ...(process.env.BENCH_EGRESS_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
            ...nodeArgs,
            'dist/cli/main.js',
            'egress',
            '--static',
            join(c, 'table.json'),
            '--name',
            'ze-bench',
            '--zone',
            'bench',
            '--state-dir',
            stateDir,
            '--listen',
            `127.0.0.1:${port}`,
            '--grace',
            '2s',
            // one process on its pinned core, as HAProxy's nbthread 1 (the default is one worker per core)
            '--workers',
            '1',
          ]),
          { logDir: join(ws.dir, 'logs'), port, cwd: repoRoot, env: { ...process.env, LOG_LEVEL: 'warn' } },
        ),
      )
      ports[name] = port
    }
    const ports: Record<string, number> = { haproxy: ws.ports.haproxy }
    await startEgress('egress', ws.ports.egress, [], state)
    // BENCH_MTLS_VARIANTS="name=--node-flag --other;name2=…": more egress processes measured side by side
    // (A/B of runtime flags on the same machine state); reported beside `egress`, not in the ratios.
    const variants = (process.env.BENCH_MTLS_VARIANTS ?? '')
      .split(';')
      .filter(Boolean)
      .map((v) => {
        const name = v.split('=', 1)[0]!
        return {
          name: `egress-${name}`,
          flags: v
            .slice(name.length + 1)
            .split(' ')
            .filter(Boolean),
        }
      })
    for (const [i, v] of variants.entries()) {
      const dir = join(c, `state-${i}`)
      cpSync(state, dir, { recursive: true })
      await startEgress(v.name, ws.ports.egress + 100 + i, v.flags, dir)
    }
    const names = ['haproxy', 'egress', ...variants.map((v) => v.name)]
    const load = (name: string, path: string, conns: number) =>
      pinned(opts.pin === 'split' ? 0 : undefined, [
        ws.tlsconn!,
        '-a',
        '127.0.0.1',
        '-p',
        String(ports[name]),
        '-s',
        sni,
        '-P',
        path,
        '-c',
        String(conns),
        '-d',
        String(opts.duration),
        '-C',
        join(c, 'web.crt'),
        '-K',
        join(c, 'web.key'),
        '-A',
        'kuma',
      ])
    const run = async (name: string, workload: 'hs' | 'bulk'): Promise<Figures> => {
      const pg = servers.get(name)!.pgid
      const t0 = groupTicks([pg]).get(pg) ?? 0
      const r = await runMeasured(
        load(name, workload === 'hs' ? '/small' : '/large', workload === 'hs' ? opts.conns.conn : opts.conns.bulk),
        opts.duration * 1000 + 20_000,
        join(ws.dir, 'tmp', 'stat'),
      )
      const ticks = (groupTicks([pg]).get(pg) ?? 0) - t0
      const j = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
        rate?: number
        p50_ms?: number
        p99_ms?: number
        errors?: number
        bytes?: number
        requests?: number
        seconds?: number
      }
      const cpuS = ticks / TICKS_PER_SECOND
      return {
        rate: j.rate ?? 0,
        p50: j.p50_ms ?? 0,
        p99: j.p99_ms ?? 0,
        mbps: (j.bytes ?? 0) / 1e6 / opts.duration,
        errors: j.errors ?? -1,
        cpuUs: j.requests ? (cpuS * 1e6) / j.requests : 0,
        cpuPct: (cpuS / opts.duration) * 100,
      }
    }
    // a check first: both proxies relay an allowed caller (a wrong setup would only show as errors)
    for (const name of names) {
      results.set(name, { hs: [], bulk: [] })
      if (opts.warmup > 0) await run(name, 'hs')
    }
    const guard = guardOf(opts, cpus().length)
    const workloads = (['hs', 'bulk'] as const).filter(
      (w) => process.env.BENCH_MTLS_WORKLOADS === undefined || process.env.BENCH_MTLS_WORKLOADS.split(',').includes(w),
    )
    for (const w of workloads) {
      for (let rep = 0; rep < opts.reps; rep++) {
        for (const name of names) {
          // as proxy-throughput's guard: wait for a quiet machine, re-run a rep during which the hypervisor stole more
          // than BENCH_MAX_STEAL_PCT (other guests' CPU lowers every rate of the rep)
          let f: Awaited<ReturnType<typeof run>>
          let stolen: number | undefined
          let retries = 0
          for (;;) {
            await waitQuietWithinBudget(guard)
            const steal = stealMeter(guard.ncpu)
            f = await run(name, w)
            stolen = steal()
            if (stolen === undefined || stolen <= guard.maxStealPct || retries >= guard.retries) break
            retries++
          }
          results.get(name)![w]!.push(f)
          console.log(
            `  ${w.padEnd(5)} ${name.padEnd(8)} rep ${rep + 1}: ${w === 'hs' ? `${f.rate.toFixed(0)} conn/s` : `${f.mbps.toFixed(0)} MB/s`}, p50/p99 ${f.p50.toFixed(2)}/${f.p99.toFixed(2)} ms, proxy ${f.cpuPct.toFixed(0)}% cpu, ${f.cpuUs.toFixed(0)} µs cpu/conn, errors ${f.errors}${stolen === undefined ? '' : `, steal ${stolen.toFixed(1)}%`}${retries ? ` (retries ${retries})` : ''}`,
          )
        }
      }
    }
    const med = (name: string, w: string, k: keyof Figures) => {
      const v = results
        .get(name)!
        [w]!.map((f) => f[k])
        .sort((a, b) => a - b)
      return v[Math.floor(v.length / 2)] ?? 0
    }
    for (const name of names) {
      ctx.report(`${name} mtls handshakes`, med(name, 'hs', 'rate'), 'conn/s')
      ctx.report(`${name} mtls handshake+request latency p50`, med(name, 'hs', 'p50'), 'ms')
      ctx.report(`${name} mtls handshake+request latency p99`, med(name, 'hs', 'p99'), 'ms')
      ctx.report(`${name} mtls CPU per handshake+request`, med(name, 'hs', 'cpuUs'), 'µs')
      ctx.report(`${name} mtls bulk (new conn per 10 MiB)`, med(name, 'bulk', 'mbps'), 'MB/s')
      ctx.report(`${name} errors hs/bulk`, med(name, 'hs', 'errors') + med(name, 'bulk', 'errors'), '')
    }
    // per core: connections per CPU-second of the proxy = 1e6 / µs per connection
    const perCore = (name: string) => 1e6 / Math.max(1, med(name, 'hs', 'cpuUs'))
    ctx.report('egress/haproxy handshakes per proxy core', perCore('egress') / perCore('haproxy'), '×', {
      note: '(target ≥ 0.9)',
    })
    ctx.report(
      'egress/haproxy handshakes/s (pinned, 1 core each)',
      med('egress', 'hs', 'rate') / Math.max(1, med('haproxy', 'hs', 'rate')),
      '×',
    )
    ctx.report(
      'egress/haproxy bulk MB/s',
      med('egress', 'bulk', 'mbps') / Math.max(1, med('haproxy', 'bulk', 'mbps')),
      '×',
    )
  } finally {
    for (const s of servers.values()) await stopServer(s)
    await stopAll()
    if (process.env.BENCH_KEEP !== '1') rmSync(ws.dir, { recursive: true, force: true })
  }
}
