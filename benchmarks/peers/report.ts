/**
 * Markdown tables of the proxy-throughput benchmark, in the layout of the usual proxy comparison table: rates and latencies,
 * ratios to direct, proxy CPU per unit of work, interference, rejection/routing. Pure.
 */
import type { CheckResult } from './checks.js'
import type { Sample, Workload } from './measure.js'

export interface TargetResult {
  name: string
  /** Why the target was not measured (smoke run without the tool). */
  skipped?: string
  workloads: Partial<Record<Workload, Sample[]>>
  checks?: CheckResult
  /** Threads / worker processes of the target (HAProxy nbthread, nginx workers, egress --workers); default 1. */
  threads?: number
}

/** Median of a list of numbers (NaN when empty). Pure. */
export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Per-sample figure by name: rate (bulk: MB/s), p50, p99, cpuUnit (µs per conn/req; bulk: CPU-s per GB), cpuPct. */
export function figure(
  w: Workload,
  s: Sample,
  name: 'rate' | 'p50' | 'p99' | 'cpuUnit' | 'cpuPct' | 'errors' | 'otherPct',
): number {
  switch (name) {
    case 'rate':
      return w === 'bulk' ? s.bytes / 1e6 / s.seconds : s.rate
    case 'cpuUnit':
      return w === 'bulk' ? s.proxyCpu / (s.bytes / 1e9) : (s.proxyCpu * 1e6) / s.requests
    case 'cpuPct':
      return (100 * s.proxyCpu) / s.seconds
    default:
      return s[name]
  }
}

/** Median of a figure over a target's samples for a workload (NaN when not measured). */
export function med(t: TargetResult, w: Workload, name: Parameters<typeof figure>[2]): number {
  return median((t.workloads[w] ?? []).map((s) => figure(w, s, name)))
}

const f = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '–')
const ratio = (x: number, d: number) =>
  Number.isFinite(x) && Number.isFinite(d) && d > 0 ? `${(x / d).toFixed(2)}×` : '–'

function table(head: string[], rows: string[][], rightFrom = 1): string {
  const align = head.map((_, i) => (i >= rightFrom ? '---:' : '---'))
  return [head, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n')
}

const W: Workload[] = ['conn', 'connraw', 'ka', 'bulk']

/** The full Markdown report for a run. */
export function renderReport(results: TargetResult[], meta: { title: string; notes: string[] }): string {
  const measured = results.filter((t) => !t.skipped)
  const direct = measured.find((t) => t.name === 'direct')
  const lat = (t: TargetResult, w: Workload) => `${f(med(t, w, 'p50'), 2)} / ${f(med(t, w, 'p99'), 2)}`
  const out: string[] = [`### ${meta.title}`, '', ...meta.notes.map((n) => `- ${n}`), '']
  out.push(
    table(
      [
        'target',
        'TLS conn/s',
        'TLS conn p50 / p99 ms',
        'raw conn/s',
        'raw conn p50 / p99 ms',
        'keep-alive req/s',
        'ka p50 / p99 ms',
        'bulk MB/s',
      ],
      measured.map((t) => [
        t.name,
        f(med(t, 'conn', 'rate')),
        lat(t, 'conn'),
        f(med(t, 'connraw', 'rate')),
        lat(t, 'connraw'),
        f(med(t, 'ka', 'rate')),
        lat(t, 'ka'),
        f(med(t, 'bulk', 'rate')),
      ]),
    ),
  )
  if (direct) {
    const r = (t: TargetResult, w: Workload, n: 'rate' | 'p50' | 'p99') => ratio(med(t, w, n), med(direct, w, n))
    const rl = (t: TargetResult, w: Workload) => `${r(t, w, 'p50')} / ${r(t, w, 'p99')}`
    out.push('', 'Ratio to direct (rates: higher is better; latencies: lower is better):', '')
    out.push(
      table(
        [
          'target',
          'TLS conn/s',
          'TLS p50 / p99',
          'raw conn/s',
          'raw p50 / p99',
          'ka req/s',
          'ka p50 / p99',
          'bulk MB/s',
        ],
        measured.map((t) => [
          t.name,
          r(t, 'conn', 'rate'),
          rl(t, 'conn'),
          r(t, 'connraw', 'rate'),
          rl(t, 'connraw'),
          r(t, 'ka', 'rate'),
          rl(t, 'ka'),
          r(t, 'bulk', 'rate'),
        ]),
      ),
    )
  }
  out.push(...againstHaproxy(measured))
  out.push('', 'Proxy process CPU (utime+stime of its process group, median) and client-side errors:', '')
  out.push(
    table(
      [
        'target',
        'µs CPU / TLS conn',
        'µs CPU / raw conn',
        'µs CPU / ka req',
        'CPU s / GB bulk',
        'CPU % TLS / raw / ka / bulk',
        'errors TLS / raw / ka / bulk',
      ],
      measured.map((t) => {
        const px = t.name !== 'direct'
        const errs = W.map((w) => f(median((t.workloads[w] ?? []).map((s) => s.errors)))).join(' / ')
        if (!px) return [t.name, '–', '–', '–', '–', '–', errs]
        return [
          t.name,
          f(med(t, 'conn', 'cpuUnit'), 1),
          f(med(t, 'connraw', 'cpuUnit'), 1),
          f(med(t, 'ka', 'cpuUnit'), 2),
          f(med(t, 'bulk', 'cpuUnit'), 2),
          W.map((w) => f(med(t, w, 'cpuPct'))).join(' / '),
          errs,
        ]
      }),
      1,
    ),
  )
  out.push(
    '',
    'Interference check: CPU used by anything other than load generator, proxy and backend, then CPU stolen by the hypervisor for other guests, in % of the whole machine (medians over kept runs, "other / steal"; "k!" = k kept runs still above a limit, "rN" = N retries):',
    '',
  )
  out.push(
    table(
      ['target', 'TLS conn', 'raw conn', 'ka', 'bulk'],
      measured.map((t) => [
        t.name,
        ...W.map((w) => {
          const ss = t.workloads[w] ?? []
          if (ss.length === 0) return '–'
          const flagged = ss.filter((s) => s.flagged).length
          const retries = ss.reduce((a, s) => a + s.retries, 0)
          return `${f(median(ss.map((s) => s.otherPct)), 1)} / ${f(median(ss.map((s) => s.stealPct ?? 0)), 1)}${flagged ? ` ${flagged}!` : ''}${retries ? ` r${retries}` : ''}`
        }),
      ]),
    ),
  )
  out.push(
    '',
    'Unknown SNI / no SNI / non-TLS bytes must be closed with no response within 2 s (answer: "none", or "alert" = only a TLS alert record); routing a.test→a, b.test→b, c.test→a|b, raw.test→1 KiB:',
    '',
  )
  const rj = (t: TargetResult, k: 'unknownSni' | 'noSni' | 'nonTls') => {
    const c = t.checks?.[k]
    return c && c.tries > 0 ? `${c.closed}/${c.tries}` : 'n/a'
  }
  out.push(
    table(
      ['target', 'unknown SNI closed', 'no SNI closed', 'non-TLS closed', 'answer', 'slowest close ms', 'routing ok'],
      measured.map((t) => {
        const c = t.checks
        const rejected = c !== undefined && c.unknownSni.tries > 0
        const answers = rejected
          ? [...new Set([...c.unknownSni.answers, ...c.noSni.answers, ...c.nonTls.answers])]
              .map((a) => a || 'none')
              .join(', ')
          : '–'
        const slowest = rejected ? f(Math.max(c.unknownSni.slowestMs, c.noSni.slowestMs, c.nonTls.slowestMs)) : '–'
        return [
          t.name,
          rj(t, 'unknownSni'),
          rj(t, 'noSni'),
          rj(t, 'nonTls'),
          answers,
          slowest,
          c ? (c.routingOk ? 'yes' : `NO ${JSON.stringify(c.routing)}`) : '–',
        ]
      }),
      5,
    ),
  )
  const spread = (w: Workload) =>
    measured
      .map((t) => {
        const rs = (t.workloads[w] ?? []).map((s) => figure(w, s, 'rate'))
        return rs.length ? `${t.name} ${f(Math.min(...rs))}–${f(Math.max(...rs))}` : ''
      })
      .filter(Boolean)
      .join(', ')
  out.push('', `Spread across repetitions (min–max rate): connraw: ${spread('connraw')}; ka: ${spread('ka')}.`)
  const endpoint = measured
    .map((t) => {
      const ss = t.workloads.conn ?? []
      if (ss.length === 0) return ''
      const be = median(ss.map((s) => (s.backendCpu * 1e6) / s.requests))
      const cl = median(ss.map((s) => (s.loadCpu * 1e6) / s.requests))
      return `${t.name} ${f(be)} / ${f(cl)}`
    })
    .filter(Boolean)
    .join(', ')
  if (endpoint) out.push('', `Endpoint CPU per full TLS connection, µs (backend nginx / client): ${endpoint}.`)
  const skipped = results.filter((t) => t.skipped)
  if (skipped.length) out.push('', `Skipped: ${skipped.map((t) => `${t.name} (${t.skipped})`).join('; ')}.`)
  return `${out.join('\n')}\n`
}

/**
 * The issue-15 view: per core (connections per CPU-second of the proxy = 1 / CPU per connection) and whole machine
 * (the rate), each target against HAProxy with the same number of threads, measured in the same run.
 */
function againstHaproxy(measured: TargetResult[]): string[] {
  const threads = (t: TargetResult) => t.threads ?? 1
  const proxies = measured.filter((t) => t.name !== 'direct')
  const perCore = (t: TargetResult) => 1e6 / med(t, 'connraw', 'cpuUnit')
  const out = [
    '',
    'Per core and whole machine: raw conn/s per core = 10^6 / µs of proxy CPU per raw connection; ratios against HAProxy with the same number of threads (rates and per core: higher is better; CPU and p99: lower is better):',
    '',
  ]
  const rows = proxies.map((t) => {
    const h = proxies.find((x) => x.name.startsWith('haproxy') && threads(x) === threads(t))
    const r = (x: number, y: number | undefined) => (h === undefined || y === undefined ? '–' : ratio(x, y))
    return [
      t.name,
      String(threads(t)),
      f(med(t, 'connraw', 'rate')),
      f(perCore(t)),
      f(med(t, 'connraw', 'cpuUnit'), 1),
      r(med(t, 'connraw', 'rate'), h && med(h, 'connraw', 'rate')),
      r(perCore(t), h && perCore(h)),
      r(med(t, 'connraw', 'cpuUnit'), h && med(h, 'connraw', 'cpuUnit')),
      r(med(t, 'conn', 'rate'), h && med(h, 'conn', 'rate')),
      r(med(t, 'conn', 'p50'), h && med(h, 'conn', 'p50')),
      r(med(t, 'conn', 'p99'), h && med(h, 'conn', 'p99')),
      r(med(t, 'ka', 'rate'), h && med(h, 'ka', 'rate')),
      r(med(t, 'ka', 'p99'), h && med(h, 'ka', 'p99')),
      r(med(t, 'bulk', 'rate'), h && med(h, 'bulk', 'rate')),
    ]
  })
  out.push(
    table(
      [
        'target',
        'threads',
        'raw conn/s',
        'raw conn/s per core',
        'µs CPU / raw conn',
        'raw conn/s vs HAProxy',
        'per core vs HAProxy',
        'CPU / raw conn vs HAProxy',
        'TLS conn/s vs HAProxy',
        'TLS p50 vs',
        'TLS p99 vs',
        'ka req/s vs',
        'ka p99 vs',
        'bulk MB/s vs',
      ],
      rows,
    ),
  )
  return out
}
