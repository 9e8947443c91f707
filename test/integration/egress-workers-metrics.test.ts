import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CliEgress, startCliEgress } from '../helpers/cli.js'
import { startUpstream, tableOf, tlsConnect, type Upstream, writeTable } from '../helpers/egress-fixtures.js'
import { waitFor } from '../helpers/procfile.js'

/**
 * The summed metrics of `zonegate egress --workers 2` (built CLI, `--static`, real TLS upstream) across a worker's
 * death (decision 015, "Metrics"): a worker is killed with SIGKILL while clients keep connecting; in every
 * /stats/prometheus and /stats answer before, during and after its replacement, no summed counter is lower than in
 * the answer before, the killed worker's counts as last seen stay in the sums and the replacement's are added, and
 * `process_start_time_seconds` (the primary's) is there and never changes.
 */
let up: Upstream
let dir: string
let egress: CliEgress

interface WorkerInfo {
  worker: number
  pid: number | null
  listening: boolean
  accepted: number | null
}
interface Stats {
  connections: { accepted: number }
  workers: WorkerInfo[]
}

beforeAll(async () => {
  up = await startUpstream('U')
  dir = await mkdtemp(join(tmpdir(), 'egress-workers-metrics-'))
  await writeTable(join(dir, 'table.json'), tableOf([{ sni: 'svc.test', upstreams: [{ port: up.port }] }], 1))
  egress = await startCliEgress([
    '--static',
    join(dir, 'table.json'),
    '--listen',
    '127.0.0.1:0',
    '--admin',
    '127.0.0.1:0',
    '--workers',
    '2',
    '--grace',
    '1s',
  ])
})

afterAll(async () => {
  if (egress && egress.child.exitCode === null) {
    egress.child.kill('SIGTERM')
    await egress.exit
  }
  await up?.close()
  await rm(dir, { recursive: true, force: true })
})

/** The samples of a Prometheus text: `name{labels}` → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

/** The series of the counters (and histograms' buckets, sums and counts) in a scrape, from its TYPE lines. */
function counterSeries(text: string, values: Map<string, number>): string[] {
  const counters = new Set<string>()
  for (const m of text.matchAll(/^# TYPE (\S+) (counter|histogram)$/gm)) counters.add(m[1]!)
  return [...values.keys()].filter((k) => {
    const name = k.replace(/\{.*$/, '')
    return counters.has(name) || counters.has(name.replace(/_(bucket|sum|count)$/, ''))
  })
}

describe('egress workers metrics', () => {
  it('egress workers metrics - after a kill -9 of a worker under traffic no summed counter goes down, and the replacement is added', async () => {
    const url = egress.adminUrl
    const scrape = async () => {
      const text = await (await fetch(`${url}/stats/prometheus`)).text()
      return { text, values: samples(text) }
    }
    const stats = async () => (await (await fetch(`${url}/stats`)).json()) as Stats

    let running = true
    let ok = 0
    const clients = Array.from({ length: 3 }, async () => {
      while (running) if ((await tlsConnect(egress.port, 'svc.test')).upstream === 'U') ok++
    })

    const decreases: string[] = []
    let previous: Map<string, number> | undefined
    let previousAccepted = 0
    const startTimes = new Set<number>()
    let victimSeen = 0
    /** One /stats/prometheus and one /stats answer, each compared with the answer before. */
    const observe = async () => {
      const { text, values } = await scrape()
      startTimes.add(values.get('process_start_time_seconds') ?? Number.NaN)
      if (previous)
        for (const k of counterSeries(text, values)) {
          const before = previous.get(k)
          if (before !== undefined && values.get(k)! < before) decreases.push(`${k}: ${before} → ${values.get(k)}`)
        }
      previous = values
      const s = await stats()
      if (s.connections.accepted < previousAccepted)
        decreases.push(`/stats accepted: ${previousAccepted} → ${s.connections.accepted}`)
      previousAccepted = s.connections.accepted
      return { values, stats: s }
    }

    try {
      // both workers accept some traffic first (the kernel spreads the accepts; under load both take some)
      await waitFor(
        'both workers accepted connections',
        async () => (await observe()).stats.workers.every((w) => (w.accepted ?? 0) >= 5),
        20_000,
      )
      for (let i = 0; i < 5; i++) await observe()

      // the last answer before the kill: the victim's counts as the primary last saw them
      const before = await observe()
      const victim = before.stats.workers.find((w) => w.worker === 1)!
      victimSeen = before.values.get('zonegate_egress_worker_connections_total{worker="1"}')!
      expect(victimSeen).toBeGreaterThan(0)
      process.kill(victim.pid!, 'SIGKILL')

      // keep observing while the worker is gone and replaced, with traffic going on
      await waitFor(
        'the replacement worker listening and accepting',
        async () => {
          const w = (await observe()).stats.workers.find((x) => x.worker === 1)!
          return w.pid !== null && w.pid !== victim.pid && w.listening && (w.accepted ?? 0) >= 5
        },
        20_000,
      )
      for (let i = 0; i < 5; i++) await observe()
    } finally {
      running = false
      await Promise.all(clients)
    }

    expect(decreases).toEqual([])
    expect([...startTimes]).toHaveLength(1)
    expect([...startTimes][0]).toBeGreaterThan(0) // process_start_time_seconds in every sum, the same
    expect(ok).toBeGreaterThan(20)

    // with the traffic stopped: the slot's summed counter is the victim's count in the last scrape before the kill
    // plus the replacement's own
    const after = await observe()
    const replacement = after.stats.workers.find((w) => w.worker === 1)!
    const slot1 = after.values.get('zonegate_egress_worker_connections_total{worker="1"}')!
    expect(replacement.accepted).toBeGreaterThanOrEqual(5)
    expect(slot1).toBe(victimSeen + replacement.accepted!)
    // the sum of the workers' slots is the egress-wide total, as in /stats
    const slot2 = after.values.get('zonegate_egress_worker_connections_total{worker="2"}')!
    expect(after.values.get('zonegate_egress_connections_total')).toBe(slot1 + slot2)
    // /stats kept the victim's counts from its last /stats answer, taken just after that scrape: as many or more
    expect(after.stats.connections.accepted).toBeGreaterThanOrEqual(slot1 + slot2)
  })
})
