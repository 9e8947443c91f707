/**
 * The one retry delay of both processes: exponential backoff with jitter (the reconciler's pass retries, the
 * egress's certificate requests and table watch, the reconciler's NATS layout checks). Pure: `random` is passed
 * in.
 */

export interface BackoffPolicy {
  /** Delay before the first retry (ms). */
  baseMs: number
  /** Cap of the exponential delay (ms), before jitter. */
  maxMs: number
  /** Jitter as a fraction of the delay: the delay is scaled by a factor in [1 - jitter, 1 + jitter). */
  jitter: number
}

/**
 * Delay before retry number `attempt` (1 = the first retry): `baseMs * 2^(attempt - 1)`, capped at `maxMs`, then
 * scaled by `1 + jitter * (2 * random() - 1)` with `random()` in [0, 1). Never below 0 nor above
 * `maxMs * (1 + jitter)`. Pure.
 */
export function backoffMs(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)))
  const factor = policy.jitter === 0 ? 1 : 1 + policy.jitter * (2 * random() - 1)
  return Math.max(0, Math.round(exp * factor))
}
