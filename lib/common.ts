import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Command, Option } from 'commander'
import { DEFAULT_NATS_URL } from '../schemas/subjects.js'

/**
 * Helpers shared by the subcommands of both sides: exit codes, errors, the `--nats`/`--output` options,
 * durations, host:port, configuration from the environment, log settings and the package version. This file
 * imports neither reconciler/ nor egress/.
 */

/**
 * Exit codes shared by every command (docs/design.md §5): 0 ok, 1 invalid / failed / not ready, 2 usage or I/O
 * (bad flags, unreadable path, NATS unreachable, port in use), 3 differ (`zonegate diff`). README's command
 * table and test/integration/exit-codes.test.ts keep them.
 */
export const Exit = { Ok: 0, Invalid: 1, Failed: 1, NotReady: 1, Usage: 2, Io: 2, Differ: 3 } as const

/** A usage or I/O error: printed as `zonegate: <message>` and exits 2. */
export class UsageError extends Error {
  readonly code: string = 'UsageError'
}

/** The command ran and failed (no reconciler, timeout, not ready): printed as `zonegate: <message>`, exits 1. */
export class CommandFailed extends Error {
  readonly code = 'CommandFailed'
}

/** Adds each item of a comma-separated value to the list (repeatable flags; the environment gives one string). */
export function collectList(value: string, previous: string[] | undefined): string[] {
  return [
    ...(previous ?? []),
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ]
}

/** `--nats URL` (repeatable, or comma-separated); environment `NATS_URL`; default nats://127.0.0.1:4222. */
export function natsOption(): Option {
  return new Option('--nats <url>', `NATS server URL (repeatable; default ${DEFAULT_NATS_URL})`)
    .argParser(collectList)
    .env('NATS_URL')
}

/**
 * The NATS servers to use given the parsed `--nats` values: every value may itself be a comma-separated list
 * (`--nats a,b --nats c` = three servers, as in `$NATS_URL`). The client tries them in turn and fails over.
 */
export function natsServers(values: string[] | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  if (values && values.length > 0) return values
  if (env.NATS_URL) return collectList(env.NATS_URL, [])
  return [DEFAULT_NATS_URL]
}

/** Parses `--replicas N` (1 to 5, the JetStream limit). Throws UsageError otherwise. */
export function parseReplicas(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 5) throw new UsageError(`--replicas: expected 1 to 5, got "${value}"`)
  return n
}

/**
 * The message for a NATS server that cannot be reached: which URLs were tried, and how to start one or point
 * the command elsewhere. Credentials in URLs are stripped.
 */
export function natsUnreachableMessage(servers: readonly string[], err?: unknown): string {
  const why = err instanceof Error ? ` (${err.message})` : ''
  if (isAuthError(err))
    return (
      `NATS at ${servers.map(redactUrl).join(', ')} refused the credentials${why}. ` +
      'Check --creds / $NATS_CREDS: the token may be missing, expired or revoked (zonegate token writes a new one).'
    )
  return (
    `cannot connect to NATS at ${servers.map(redactUrl).join(', ')}${why}. ` +
    'Is nats-server running? Start one with `nats-server -js` (or the whole demo with `npm start`), ' +
    'or point --nats / $NATS_URL at your cluster.'
  )
}

/** True for the client's errors about credentials (authorization violation, expired or revoked user). Pure. */
export function isAuthError(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (/authori[sz]ation|authentication|user .*expired|revoked/i.test(e.message)) return true
    if ((e as { code?: unknown }).code === 'AUTHORIZATION_VIOLATION') return true
  }
  return false
}

/** A URL without userinfo, query or fragment (for messages and logs). Pure. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    u.search = ''
    u.hash = ''
    return u.toString().replace(/\/$/, '')
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//')
  }
}

export type OutputFormat = 'text' | 'json' | 'yaml'

/** `-o, --output <format>`: `text` (default), `json` or `yaml`. */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(['text', 'json', 'yaml']).default('text')
}

/**
 * A value rendered as `json` (indented) or `yaml` (one document, `---` first when `stream` so several values
 * form a YAML stream), with a final newline. The yaml module loads only when needed.
 */
export async function formatStructured(value: unknown, format: 'json' | 'yaml', stream = false): Promise<string> {
  if (format === 'json') return `${JSON.stringify(value, null, stream ? undefined : 2)}\n`
  const { stringify } = await import('yaml')
  return `${stream ? '---\n' : ''}${stringify(value, { lineWidth: 0 })}`
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

const UNIT_MS = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const

/**
 * Parses a duration as Go's `time.ParseDuration` does (`1m30s`, `1.5h`, `300ms`, `2h45m`; units ns us µs ms s
 * m h), or a bare number of seconds (`30`). Returns whole milliseconds. Throws UsageError naming the flag.
 * Pure.
 */
export function parseDuration(value: string, flag: string): number {
  const text = value.trim()
  if (/^\d+(?:\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000)
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy
  let total = 0
  let at = 0
  for (let m = part.exec(text); m; m = part.exec(text)) {
    total += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]
    at = part.lastIndex
  }
  if (text === '' || at !== text.length)
    throw new UsageError(`${flag}: expected a duration like 500ms, 10s, 1m30s or 2h, got "${value}"`)
  return Math.round(total)
}

/**
 * A whole number of milliseconds as a flag default is written: in hours when it is whole hours, else in seconds
 * when whole seconds, else in ms (`3_600_000` → `1h`, `60_000` → `60s`, `1500` → `1500ms`). `parseDuration`
 * reads it back. Pure.
 */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['s', 1000],
  ] as const)
    if (ms > 0 && ms % size === 0) return `${ms / size}${unit}`
  return `${ms}ms`
}

/** Options whose environment variable is not `ZONEGATE_<FLAG>` (the conventions of NATS tools and pino). */
export const ENV_EXCEPTIONS: Readonly<Record<string, string>> = {
  nats: 'NATS_URL',
  creds: 'NATS_CREDS',
  'log-level': 'LOG_LEVEL',
  'log-format': 'LOG_FORMAT',
}

/**
 * The environment variable of an option: `ZONEGATE_` + the long flag in upper case with `-` as `_`
 * (`--rollout-timeout` → `ZONEGATE_ROLLOUT_TIMEOUT`, `--no-request` → `ZONEGATE_NO_REQUEST`), except
 * ENV_EXCEPTIONS. Pure.
 */
export function envVarFor(longFlag: string): string {
  const name = longFlag.replace(/^--/, '')
  return ENV_EXCEPTIONS[name] ?? `ZONEGATE_${name.replace(/-/g, '_').toUpperCase()}`
}

const TRUE = /^(?:1|true|yes|on)$/i
const FALSE = /^(?:0|false|no|off|)$/i

/**
 * Gives every option of every command of `program` its environment variable (envVarFor), through
 * commander's own `Option.env`, so any option added later gets one too: call it once after all commands are
 * registered. Precedence: flag, then environment, then default. Boolean flags read the variable's value
 * (`true/1/yes/on`, `false/0/no/off`; anything else is a usage error) instead of commander's "set means true".
 */
export function applyEnvironment(program: Command): void {
  const walk = (cmd: Command) => {
    for (const option of [...cmd.options]) {
      if (!option.long || option.long === '--help' || option.long === '--version') continue
      if (option.envVar) continue
      // commander wires an option's variable when the option is added: set it, then add the option again
      // (same place in the list, its old listener removed) so the variable is read at parse time.
      const options = cmd.options as Option[]
      const at = options.indexOf(option)
      option.env(envVarFor(option.long))
      options.splice(at, 1)
      ;(cmd as unknown as NodeJS.EventEmitter).removeAllListeners(`option:${option.name()}`)
      cmd.addOption(option)
      options.splice(options.length - 1, 1)
      options.splice(at, 0, option)
    }
    for (const sub of cmd.commands) walk(sub)
  }
  walk(program)
  program.hook('preAction', (_root, action) => {
    for (let cmd: Command | null = action; cmd; cmd = cmd.parent) {
      for (const option of cmd.options) {
        const key = option.attributeName()
        if (option.required || option.optional || !option.envVar) continue
        if (cmd.getOptionValueSource(key) !== 'env') continue
        const raw = process.env[option.envVar] ?? ''
        const on = TRUE.test(raw) ? true : FALSE.test(raw) ? false : undefined
        if (on === undefined)
          throw new UsageError(`${option.envVar}: expected true or false (for ${option.long}), got "${raw}"`)
        cmd.setOptionValueWithSource(key, option.negate ? !on : on, 'env')
      }
    }
  })
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export const LOG_FORMATS = ['json', 'pretty'] as const
export type LogFormat = (typeof LOG_FORMATS)[number]
export interface LogSettings {
  level?: string
  format?: LogFormat
}

/** The global `--log-level` (env LOG_LEVEL) and `--log-format` (env LOG_FORMAT) options. */
export function logOptions(): Option[] {
  return [
    new Option('--log-level <level>', 'log level of long-running processes (default info)').choices(LOG_LEVELS),
    new Option('--log-format <format>', 'log lines as JSON (default) or pretty for people').choices(LOG_FORMATS),
  ]
}

/** The log settings given to the command or the program (`--log-level`, `--log-format`, or their env). */
export function logSettings(cmd: Command): LogSettings {
  const o = cmd.optsWithGlobals() as { logLevel?: string; logFormat?: LogFormat }
  return { ...(o.logLevel ? { level: o.logLevel } : {}), ...(o.logFormat ? { format: o.logFormat } : {}) }
}

let version: string | undefined

/** The version in the package's own package.json (found upwards from this file, in source or dist/). */
export function packageVersion(): string {
  if (version) return version
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'zonegate' && pkg.version) {
        version = pkg.version
        return version
      }
    } catch {
      // not here: look one level up
    }
    dir = dirname(dir)
  }
  version = '0.0.0-unknown'
  return version
}

/** Adds an `Examples:` section to a command's help. */
export function withExamples(cmd: Command, examples: readonly string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${examples.map((e) => `  ${e}`).join('\n')}\n`)
}
