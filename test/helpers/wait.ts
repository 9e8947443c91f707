import { vi } from 'vitest'

/**
 * Polls `fn` with vitest's `vi.waitFor` until it gives something other than `undefined` or `false`, and returns
 * that; a `fn` that throws is polled again. Fails after `timeoutMs` with `<what> not met within <ms> ms` (or the
 * last error `fn` threw). For test files only: benchmarks, which run outside vitest, poll with procfile.ts's
 * `waitFor`.
 */
export function waitUntil<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  what = 'condition',
  intervalMs = 25,
): Promise<T> {
  return vi.waitFor(
    async () => {
      const v = await fn()
      if (v === undefined || v === false) throw new Error(`${what} not met within ${timeoutMs} ms`)
      return v
    },
    { timeout: timeoutMs, interval: intervalMs },
  )
}
