import { type DestinationStream, type Logger, pino } from 'pino'
import pretty from 'pino-pretty'
import type { LogFormat } from './common.js'

/**
 * The root logger of a process (the reconciler's and the egress's main.ts create theirs here, once):
 * - `json` (default): one JSON object per line with an ISO-8601 `time`, `level` as a name (`"info"`), and no
 *   duplicate keys (pino appends a child's bindings and the call's fields without merging, so a line is
 *   re-serialized once: the last value of a key wins, as JSON.parse reads it);
 * - `pretty`: pino-pretty, for people (what `npm start` uses): `[12:00:01.234] INFO (reconciler): zone published {"zone":"zone-a"}`.
 * Level and format: the options, else `$LOG_LEVEL` / `$LOG_FORMAT`, else `info` / `json`.
 */
export interface LoggerOptions {
  name: string
  level?: string
  format?: LogFormat
  /** File descriptor or stream (default stdout). */
  destination?: number | DestinationStream
  env?: NodeJS.ProcessEnv
}

/**
 * Field names whose values never reach a log line, at the top level and up to two levels down (`err.config.password`,
 * `req.headers.authorization`): credentials, secrets and private keys. pino replaces them with `[Redacted]`.
 * (Public keys are logged as `publicKey`/`trustedKeys`, which are not secret.)
 */
export const REDACTED_FIELDS = [
  'password',
  'passwd',
  'secret',
  'webhookSecret',
  'token',
  'accessToken',
  'authorization',
  'cookie',
  'creds',
  'credentials',
  'jwt',
  'seed',
  'nkey',
  'privateKey',
  'clientKey',
  'signingKey',
  'apiKey',
] as const

/** pino `redact` paths for REDACTED_FIELDS. */
export const REDACT_PATHS: string[] = REDACTED_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`])

/** Creates the root logger (see above). */
export function createLogger(opts: LoggerOptions): Logger {
  const env = opts.env ?? process.env
  const level = opts.level ?? env.LOG_LEVEL ?? 'info'
  const format = opts.format ?? (env.LOG_FORMAT === 'pretty' ? 'pretty' : 'json')
  const dest = opts.destination ?? 1
  const base = { name: opts.name, level, timestamp: pino.stdTimeFunctions.isoTime, redact: REDACT_PATHS }
  if (format === 'pretty') {
    const fd = typeof dest === 'number' ? dest : 1
    const stream =
      typeof dest === 'number'
        ? pretty({
            destination: fd,
            sync: true,
            colorize: fd === 1 ? process.stdout.isTTY === true : process.stderr.isTTY === true,
            translateTime: 'SYS:HH:MM:ss.l',
            ignore: 'pid,hostname',
            singleLine: true,
          })
        : pretty({
            destination: dest as NodeJS.WritableStream,
            sync: true,
            colorize: false,
            ignore: 'pid,hostname',
            singleLine: true,
          })
    return pino(base, stream)
  }
  const out = typeof dest === 'number' ? pino.destination({ dest, sync: true }) : dest
  return pino({ ...base, formatters: { level: (label) => ({ level: label }) } }, dedupeKeys(out))
}

/** A destination that rewrites each JSON line without duplicate keys (last value wins). */
export function dedupeKeys(dest: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      let text = line
      try {
        text = `${JSON.stringify(JSON.parse(line))}\n`
      } catch {
        // not one JSON object: pass it on unchanged
      }
      dest.write(text)
    },
  }
}
