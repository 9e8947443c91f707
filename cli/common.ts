import { Option } from 'commander'
import { DEFAULT_NATS_URL } from '../schemas/subjects.js'

/**
 * Helpers shared by the subcommands of both sides. This file imports neither reconciler/ nor egress/.
 */

/** Exit codes shared by every command (DESIGN.md §5). */
export const Exit = { Ok: 0, Invalid: 1, Differ: 2, Usage: 2 } as const

/** A usage or I/O error: printed as `zonegate: <message>` and exits 2. */
export class UsageError extends Error {
  readonly code = 'UsageError'
}

/** `--nats URL` (repeatable); default `$NATS_URL`, else nats://127.0.0.1:4222. */
export function natsOption(): Option {
  return new Option(
    '--nats <url>',
    'NATS server URL (repeatable; default $NATS_URL, else nats://127.0.0.1:4222)',
  ).argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
}

/**
 * The NATS servers to use given the parsed `--nats` values: every value may itself be a comma-separated list
 * (`--nats a,b --nats c` = three servers, as in `$NATS_URL`). The client tries them in turn and fails over.
 */
export function natsServers(values: string[] | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const split = (v: string) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
  if (values && values.length > 0) return values.flatMap(split)
  if (env.NATS_URL) return split(env.NATS_URL)
  return [DEFAULT_NATS_URL]
}

/** Parses `--replicas N` (1 to 5, the JetStream limit). Throws UsageError otherwise. */
export function parseReplicas(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 5) throw new UsageError(`--replicas: expected 1 to 5, got "${value}"`)
  return n
}

/** `--output <format>`: `text` (default) or `json`. */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text')
}

/**
 * Parses `HOST:PORT` (`[::1]:80` for IPv6). Throws UsageError naming the flag on bad input. `PORT` alone
 * means 127.0.0.1.
 */
export function parseHostPort(value: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value) ?? /^()()(\d{1,5})$/.exec(value)
  const port = m ? Number(m[3]) : Number.NaN
  if (!m || !(port >= 0 && port <= 65535)) throw new UsageError(`${flag}: expected HOST:PORT, got "${value}"`)
  return { host: m[1] || m[2] || '127.0.0.1', port }
}

/**
 * Parses a duration: `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds. Returns milliseconds.
 */
export function parseDuration(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim())
  if (!m) throw new UsageError(`${flag}: expected a duration like 500ms, 10s, 2m, got "${value}"`)
  const n = Number(m[1])
  const unit = m[2] ?? 's'
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'])
}
