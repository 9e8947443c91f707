import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { hubSignature } from '../reconciler/triggers.js'
import { commitSubject, RECONCILE_SUBJECT } from '../schemas/subjects.js'
import { type System, startSystem, tmpScratch } from '../test/e2e/system.js'
import type { BenchContext } from './run.js'

/**
 * commit-to-converged: the whole system as real processes (built CLI: nats-server, `zonegate reconciler` on
 * a Git repository seeded from gitops-example/, three zone-a egresses in NATS mode, TLS demo upstreams).
 * Each sample commits a one-file change that only zone-a's table sees (the weight of `billing`, i.e. the
 * `instances` of zone-b's ZoneIngress, alternating 2/3: a cross-zone route of zone-a), triggers the
 * reconciler (a NATS request on zonegate.cmd.reconcile, or a signed POST /hooks/git) and waits for
 * `zonegate.events.commit.<sha>.converged`, which the reconciler emits once all three egress instances
 * heartbeat the new digest. p50/p99 over 50 commits per trigger (target p50 < 300 ms); smoke: 3 commits.
 * The poll interval is 1 h, so only the trigger starts a pass. Needs `npm run build`.
 */

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0

const INGRESS_B = 'zones/zone-b/zone-ingresses/ingress-1.yaml'

export default async function bench(ctx: BenchContext): Promise<void> {
  const n = ctx.smoke ? 3 : 50
  const scratch = await tmpScratch()
  const secretFile = join(scratch, 'secret')
  await writeFile(secretFile, 'bench-secret')
  let sys: System | undefined
  try {
    sys = await startSystem({
      egresses: [
        { zone: 'zone-a', instance: 'b1' },
        { zone: 'zone-a', instance: 'b2' },
        { zone: 'zone-a', instance: 'b3' },
      ],
      interval: '1h',
      reconcilerArgs: ['--webhook-secret-file', secretFile],
      egressArgs: ['--grace', '1s'],
    })
    const s = sys
    const converged = new Map<string, number>()
    const sub = s.nc.subscribe(commitSubject('*', 'converged'), {
      callback: (_err, m) => {
        converged.set(m.subject.split('.')[3] as string, performance.now())
      },
    })
    const ingress = s.repo.files.get(INGRESS_B)
    if (!ingress?.includes('instances: 3')) throw new Error(`${INGRESS_B}: expected billing with instances: 3`)
    let k = 0
    for (const trigger of ['nats', 'webhook'] as const) {
      const samples: number[] = []
      for (let i = 0; i < n + 1; i++) {
        const text = ingress.replace('instances: 3', `instances: ${2 + (k++ % 2)}`)
        const t0 = performance.now()
        const sha = await s.repo.commit({ [INGRESS_B]: text }, `bench ${i}`)
        if (trigger === 'nats') void s.nc.request(RECONCILE_SUBJECT, '{}', { timeout: 10_000 }).catch(() => {})
        else {
          const body = JSON.stringify({ ref: 'refs/heads/main', after: sha })
          void fetch(`${s.http}/hooks/git`, {
            method: 'POST',
            body,
            headers: { 'x-hub-signature-256': hubSignature('bench-secret', body), 'x-github-event': 'push' },
          }).catch(() => {})
        }
        const deadline = Date.now() + 15_000
        while (!converged.has(sha)) {
          if (Date.now() > deadline)
            throw new Error(
              `${trigger} commit ${i} ${sha} did not converge within 15 s\n${s.reconciler.output().slice(-3000)}`,
            )
          await new Promise((r) => setTimeout(r, 2))
        }
        // the first commit of each trigger is a warm-up
        if (i > 0) samples.push((converged.get(sha) as number) - t0)
      }
      samples.sort((a, b) => a - b)
      ctx.report(`commit-to-converged ${trigger} trigger p50 (n=${n}, 3 egresses)`, pct(samples, 50), 'ms', {
        target: 300,
      })
      ctx.report(`commit-to-converged ${trigger} trigger p99 (n=${n}, 3 egresses)`, pct(samples, 99), 'ms')
    }
    sub.unsubscribe()
  } finally {
    await sys?.stop()
    const { rm } = await import('node:fs/promises')
    await rm(scratch, { recursive: true, force: true })
  }
}
