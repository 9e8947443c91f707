import type { InstanceHeartbeat } from '../../schemas/events.js'
import type { ZoneRolloutStatus } from '../../schemas/status.js'
import { commitPublication, revisionSha } from './events.js'
import {
  byName,
  type InstanceSeen,
  instanceName,
  liveInstances,
  type RolloutBook,
  type RolloutOutput,
  RolloutState,
  type RolloutStep,
  StallReason,
  type ZoneRef,
  type ZoneRollout,
} from './rollout-book.js'

/**
 * Rollout tracking, the pure half (the edge is reconciler/rollout/tracker.ts). A `RolloutBook` holds the live
 * egress instances (from heartbeats in KV `zonegate-instances`), one rollout per zone (the last table the
 * zone received) and the commits whose rollout is still undecided. Every function takes the book and `now`
 * (ms), returns a new book plus the outputs the edge turns into events and logs, and never mutates its input.
 *
 * Rules (docs/reconciler.md "Rollouts"):
 * - An instance is live while its last heartbeat is younger than the bucket TTL (2.9 sends no expiry event,
 *   so liveness is decided here) and its state is not `draining`/`stopped`; a KV delete removes it at once.
 * - An instance reports the digest through a `rollout.applied` event or a heartbeat carrying the digest;
 *   once reported it stays reported for that rollout (the two arrive on different paths, in any order).
 * - `converged`: at least one live instance and every live instance reported. A zone with no live instance
 *   waits (an egress that starts within the timeout converges it), then times out with `missing: []`.
 * - `timeout`: the deadline passed; `missing` names the live instances that did not report.
 * - A newer table for the zone (or the zone's removal) ends the rollout as superseded: no timeout event.
 * - Commit: `converged` when all its zones converged, `stalled` at the first zone timeout or at the first
 *   rejection of its table by a live instance (reason RolloutTimeout / RolloutRejected), `superseded` when a
 *   newer commit replaced one of its zones' tables before it was decided.
 * - After a rollout ended, an instance that appears and reports the digest is announced
 *   (`instance.converged`); one that does not report it within the timeout is announced once as stale.
 */

export {
  type CommitRollout,
  type InstanceSeen,
  initialRolloutBook,
  instanceName,
  nextWakeupMs,
  type RolloutBook,
  type RolloutOutput,
  RolloutState,
  type RolloutStep,
  StallReason,
  type ZoneRollout,
  zoneRolloutStatuses,
} from './rollout-book.js'

/** How long a published zone may take to converge before its rollout times out (`--rollout-timeout`). */
export const DEFAULT_ROLLOUT_TIMEOUT_MS = 60_000

const bookKey = (zone: string, egress: string, instance: string) => `${zone}/${egress}/${instance}`
const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`

/**
 * Starts following the rollout of a published commit: one rollout per added/changed zone (deadline
 * now + timeout), superseding the zone's undecided rollout; removed zones end theirs and are forgotten.
 * A commit with nothing to follow (only removals) converges at once with `zones: []`. Pure.
 */
export function startCommitRollout(
  book: RolloutBook,
  c: { revision: string; sha: string; zones: { zone: string; generation: number; digest: string; change: string }[] },
  now: number,
): RolloutStep {
  const b = structuredClone(book)
  const out: RolloutOutput[] = []
  const tracked = c.zones.filter((z) => z.change !== 'removed')
  for (const z of c.zones) {
    const prev = b.zones[z.zone]
    if (prev?.state === RolloutState.Progressing) {
      out.push({ type: 'zone.superseded', ...ref(prev), by: c.revision })
      const pc = b.commits[prev.sha]
      if (pc && prev.sha !== c.sha) {
        out.push({
          type: 'commit.superseded',
          revision: pc.revision,
          sha: pc.sha,
          publication: pc.publication,
          by: c.revision,
        })
        delete b.commits[prev.sha]
      }
    }
    if (z.change === 'removed') delete b.zones[z.zone]
  }
  for (const z of tracked) {
    b.zones[z.zone] = {
      zone: z.zone,
      revision: c.revision,
      sha: c.sha,
      generation: z.generation,
      digest: z.digest,
      state: RolloutState.Progressing,
      startedMs: now,
      deadlineMs: now + b.timeoutMs,
      reported: [],
      rejected: {},
      missing: [],
      late: {},
    }
  }
  const publication = commitPublication(c.zones)
  if (tracked.length === 0)
    out.push({ type: 'commit.converged', revision: c.revision, sha: c.sha, publication, zones: [] })
  else
    b.commits[c.sha] = {
      sha: c.sha,
      revision: c.revision,
      publication,
      zones: tracked.map((z) => z.zone).sort(byName),
    }
  return evaluate(b, now, out)
}

/**
 * Takes over the rollouts a previous lease holder was following (issue #12.4), from the status it wrote
 * (KV `zonegate-status`): each zone whose rollout is `progressing` (of the table the zone holds) is followed
 * again with its original start and deadline, the instances it counted as reported, and its rejections.
 * Grouped by revision into commits, with the commit's zones that already converged, so `converged` / `timeout`
 * and `commit.converged` / `commit.stalled` still come, with the msg ids the previous holder would have used.
 * A commit with a zone that timed out was already decided (stalled) and is not resumed. Zones already followed
 * by this book are left alone. Pure.
 */
export function resumeRollouts(
  book: RolloutBook,
  zones: readonly { zone: string; digest: string; rollout?: ZoneRolloutStatus }[],
  now: number,
): RolloutStep {
  const b = structuredClone(book)
  const byRevision = new Map<string, { zone: string; rollout: ZoneRolloutStatus }[]>()
  for (const z of zones) {
    const r = z.rollout
    if (!r || r.digest !== z.digest || b.zones[z.zone]) continue
    byRevision.set(r.revision, [...(byRevision.get(r.revision) ?? []), { zone: z.zone, rollout: r }])
  }
  for (const [revision, list] of byRevision) {
    if (!list.some((z) => z.rollout.state === RolloutState.Progressing)) continue
    if (list.some((z) => z.rollout.state === RolloutState.Timeout)) continue
    const sha = revisionSha(revision)
    for (const { zone, rollout: r } of list) {
      const startedMs = Date.parse(r.startedAt)
      b.zones[zone] = {
        zone,
        revision,
        sha,
        generation: r.generation,
        digest: r.digest,
        state: r.state,
        startedMs: Number.isFinite(startedMs) ? startedMs : now,
        deadlineMs: (Number.isFinite(startedMs) ? startedMs : now) + b.timeoutMs,
        ...(r.endedAt ? { endedMs: Date.parse(r.endedAt) } : {}),
        reported: [...r.current],
        rejected: Object.fromEntries(r.rejected.map((x) => [x.instance, x.reason])),
        missing: [],
        late: {},
      }
    }
    b.commits[sha] = {
      sha,
      revision,
      publication: commitPublication(list.map((z) => ({ generation: z.rollout.generation }))),
      zones: list.map((z) => z.zone).sort(byName),
    }
  }
  return evaluate(b, now, [])
}

/** A heartbeat (KV PUT of `<zone>.<egress>.<instance>`, names decoded) seen at `seenMs`. Pure. */
export function observeHeartbeat(
  book: RolloutBook,
  h: { zone: string; egress: string; instance: string; heartbeat: InstanceHeartbeat; seenMs: number },
  now: number,
): RolloutStep {
  const b = structuredClone(book)
  const k = bookKey(h.zone, h.egress, h.instance)
  const prev = b.instances[k]
  b.instances[k] = {
    ...(prev ?? { zone: h.zone, egress: h.egress, instance: h.instance }),
    lastSeenMs: Math.max(prev?.lastSeenMs ?? 0, Math.min(h.seenMs, now)),
    ...(typeof h.heartbeat.heartbeatMs === 'number' ? { periodMs: h.heartbeat.heartbeatMs } : {}),
    state: h.heartbeat.state,
    digest: h.heartbeat.digest,
  }
  return evaluate(b, now, [])
}

/** The instance's key was deleted (a graceful stop): it is no longer live. Pure. */
export function observeInstanceGone(
  book: RolloutBook,
  i: { zone: string; egress: string; instance: string },
  now: number,
): RolloutStep {
  const b = structuredClone(book)
  delete b.instances[bookKey(i.zone, i.egress, i.instance)]
  return evaluate(b, now, [])
}

/** A `rollout.applied` event: the instance serves `digest` (and is alive now). Pure. */
export function observeApplied(
  book: RolloutBook,
  a: { zone: string; egress: string; instance: string; digest: string },
  now: number,
): RolloutStep {
  const b = structuredClone(book)
  const k = bookKey(a.zone, a.egress, a.instance)
  const seen = b.instances[k] ?? { zone: a.zone, egress: a.egress, instance: a.instance }
  b.instances[k] = { ...seen, lastSeenMs: now, appliedDigest: a.digest }
  const z = b.zones[a.zone]
  const name = instanceName(a.egress, a.instance)
  if (z && a.digest === z.digest) delete z.rejected[name]
  return evaluate(b, now, [])
}

/**
 * A `rollout.rejected` event. When it concerns the zone's current table (same digest or generation, or
 * neither given), it is recorded, announced (`instance.rejected`) and stalls the undecided commit. Pure.
 */
export function observeRejected(
  book: RolloutBook,
  r: { zone: string; egress: string; instance: string; digest?: string; generation?: number; reason: string },
  now: number,
): RolloutStep {
  const b = structuredClone(book)
  const out: RolloutOutput[] = []
  const k = bookKey(r.zone, r.egress, r.instance)
  b.instances[k] = { ...(b.instances[k] ?? { zone: r.zone, egress: r.egress, instance: r.instance }), lastSeenMs: now }
  const z = b.zones[r.zone]
  const concerns =
    z &&
    (r.digest !== undefined ? r.digest === z.digest : r.generation !== undefined ? r.generation === z.generation : true)
  if (z && concerns) {
    const name = instanceName(r.egress, r.instance)
    z.rejected[name] = r.reason
    out.push({ type: 'instance.rejected', ...ref(z), instance: name, reason: r.reason })
    const c = b.commits[z.sha]
    if (c && z.state === RolloutState.Progressing) {
      const message = `zone ${z.zone} gen ${z.generation}: ${name} rejected the table: ${r.reason}`
      out.push({
        type: 'commit.stalled',
        revision: c.revision,
        sha: c.sha,
        publication: c.publication,
        reason: StallReason.RolloutRejected,
        message,
      })
      delete b.commits[z.sha]
    }
  }
  return evaluate(b, now, out)
}

/** Time passes: instances age out, deadlines expire. Pure. */
export function tickRollouts(book: RolloutBook, now: number): RolloutStep {
  return evaluate(structuredClone(book), now, [])
}

const ref = (z: ZoneRollout): ZoneRef => ({
  zone: z.zone,
  revision: z.revision,
  generation: z.generation,
  digest: z.digest,
})

const serves = (i: InstanceSeen, digest: string) => i.digest === digest || i.appliedDigest === digest

/** Applies the rules to a (cloned, owned) book: liveness, reports, convergence, deadlines, late instances. */
function evaluate(b: RolloutBook, now: number, out: RolloutOutput[]): RolloutStep {
  for (const [k, i] of Object.entries(b.instances)) if (now - i.lastSeenMs > b.liveTtlMs) delete b.instances[k]
  for (const z of Object.values(b.zones).sort((x, y) => byName(x.zone, y.zone))) {
    const live = liveInstances(b, z.zone, now)
    const names = live.map((i) => instanceName(i.egress, i.instance)).sort(byName)
    if (z.state === RolloutState.Progressing) {
      for (const i of live) {
        const n = instanceName(i.egress, i.instance)
        if (serves(i, z.digest) && !z.reported.includes(n)) z.reported.push(n)
      }
      if (names.length > 0 && names.every((n) => z.reported.includes(n))) {
        z.state = RolloutState.Converged
        z.endedMs = now
        out.push({ type: 'zone.converged', ...ref(z), instances: names, ms: now - z.startedMs })
        commitZoneConverged(b, z, out)
      } else if (now >= z.deadlineMs) {
        z.state = RolloutState.Timeout
        z.endedMs = now
        z.missing = names.filter((n) => !z.reported.includes(n))
        for (const n of z.missing) z.late[n] = { sinceMs: now, stale: true }
        out.push({ type: 'zone.timeout', ...ref(z), missing: z.missing, rejected: { ...z.rejected } })
        commitZoneTimedOut(b, z, out)
      }
      continue
    }
    for (const i of live) {
      const n = instanceName(i.egress, i.instance)
      if (z.reported.includes(n)) delete z.late[n]
      else if (serves(i, z.digest)) {
        z.reported.push(n)
        delete z.late[n]
        out.push({ type: 'instance.converged', ...ref(z), instance: n })
      } else {
        const l = z.late[n]
        if (!l) z.late[n] = { sinceMs: now, stale: false }
        else if (!l.stale && now - l.sinceMs >= b.timeoutMs) {
          l.stale = true
          out.push({ type: 'instance.stale', ...ref(z), instance: n, ...(i.digest ? { serving: i.digest } : {}) })
        }
      }
    }
    for (const n of Object.keys(z.late)) if (!names.includes(n)) delete z.late[n]
  }
  return { book: b, outputs: out }
}

function commitZoneConverged(b: RolloutBook, z: ZoneRollout, out: RolloutOutput[]): void {
  const c = b.commits[z.sha]
  if (!c) return
  const done = c.zones.every((n) => b.zones[n]?.sha === c.sha && b.zones[n]?.state === RolloutState.Converged)
  if (!done) return
  out.push({ type: 'commit.converged', revision: c.revision, sha: c.sha, publication: c.publication, zones: c.zones })
  delete b.commits[c.sha]
}

function commitZoneTimedOut(b: RolloutBook, z: ZoneRollout, out: RolloutOutput[]): void {
  const c = b.commits[z.sha]
  if (!c) return
  const what =
    z.missing.length > 0
      ? `no report from ${z.missing.join(', ')} within ${seconds(b.timeoutMs)}`
      : `no live instance within ${seconds(b.timeoutMs)}`
  const rejected = Object.entries(z.rejected).map(([n, r]) => `${n} rejected it: ${r}`)
  const message = [`zone ${z.zone} gen ${z.generation}: ${what}`, ...rejected].join('; ')
  out.push({
    type: 'commit.stalled',
    revision: c.revision,
    sha: c.sha,
    publication: c.publication,
    reason: StallReason.RolloutTimeout,
    message,
  })
  delete b.commits[c.sha]
}
