import { readFileSync } from 'node:fs'
import type { Authenticator } from '@nats-io/transport-node'
import { type Command, Option } from 'commander'
import { natsOption, UsageError } from './common.js'

/**
 * How every zonegate command and process connects to NATS (docs/design.md §5): one helper, `natsConnectOptions`,
 * turns `--creds FILE` (a NATS `.creds` file: user JWT + nkey seed; env `NATS_CREDS`) and
 * `--nats-ca/--nats-cert/--nats-key` (TLS to NATS; env `ZONEGATE_NATS_CA`…) into the connection options the
 * transports spread into `connect()`: an authenticator, TLS material and the inbox prefix the user's JWT allows
 * (a zone token may only subscribe to its own `_INBOX.zone.<zone>.>`, so request/reply and JetStream
 * consumers need that prefix). Files are read once, here; an error names the file and the flag, never the
 * file's content (docs/security.md).
 */

/** The part of nats.js's ConnectionOptions this module decides; transports spread it into `connect()`. */
export interface NatsAuthOptions {
  authenticator?: Authenticator
  tls?: { ca?: string; cert?: string; key?: string }
  inboxPrefix?: string
}

/** The parsed NATS flags of a command. */
export interface NatsFlags {
  nats?: string[]
  creds?: string
  natsCa?: string
  natsCert?: string
  natsKey?: string
}

/** `--creds FILE` (env NATS_CREDS). */
export const credsOption = () =>
  new Option('--creds <file>', 'NATS credentials file (.creds: user JWT + seed; `zonegate token` writes one)').env(
    'NATS_CREDS',
  )
/** `--nats-ca FILE` (env ZONEGATE_NATS_CA). */
export const natsCaOption = () => new Option('--nats-ca <file>', 'CA certificate (PEM) of the NATS server (TLS)')
/** `--nats-cert FILE` (env ZONEGATE_NATS_CERT). */
export const natsCertOption = () =>
  new Option('--nats-cert <file>', 'client certificate (PEM) for TLS to NATS (with --nats-key)')
/** `--nats-key FILE` (env ZONEGATE_NATS_KEY). */
export const natsKeyOption = () => new Option('--nats-key <file>', 'private key (PEM) of --nats-cert')

/** `--nats`, `--creds`, `--nats-ca`, `--nats-cert`, `--nats-key`: every command that uses NATS has all five. */
export function natsOptions(): Option[] {
  return [natsOption(), credsOption(), natsCaOption(), natsCertOption(), natsKeyOption()]
}

const JWT_BLOCK = /-{3,}BEGIN NATS USER JWT-{3,}\s*\n\s*([A-Za-z0-9_.=-]+)\s*\n\s*-{3,}END NATS USER JWT-{3,}/
const SEED_BLOCK = /-{3,}BEGIN USER NKEY SEED-{3,}\s*\n\s*(SU[A-Z2-7]+)\s*\n\s*-{3,}END USER NKEY SEED-{3,}/

/** What a `.creds` file holds, checked (not verified: the server verifies the signature chain). */
export interface ParsedCreds {
  jwt: string
  /** The user's public nkey (`U…`), the JWT's subject. */
  user: string
  name: string
  /** Expiry, seconds since the epoch, when the JWT has one. */
  exp?: number
  /** Subjects the user may subscribe to. */
  subAllow: string[]
}

/**
 * Parses the text of a `.creds` file: the user JWT's claims (decoded, not verified) and the presence of a user
 * seed. Throws an Error whose message says what is wrong without quoting the text. Pure.
 */
export function parseCredsText(text: string): ParsedCreds {
  const jwt = JWT_BLOCK.exec(text)?.[1]
  if (!jwt) throw new Error('not a NATS credentials file (no "BEGIN NATS USER JWT" block)')
  if (!SEED_BLOCK.test(text)) throw new Error('not a NATS credentials file (no "BEGIN USER NKEY SEED" block)')
  const parts = jwt.split('.')
  let claims: { sub?: unknown; name?: unknown; exp?: unknown; nats?: { type?: unknown; sub?: { allow?: unknown } } }
  try {
    if (parts.length !== 3) throw new Error('parts')
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'))
  } catch {
    throw new Error('the user JWT is malformed')
  }
  if (typeof claims.sub !== 'string' || !claims.sub.startsWith('U') || claims.nats?.type !== 'user')
    throw new Error('the JWT is not a NATS user JWT')
  const allow = claims.nats?.sub?.allow
  return {
    jwt,
    user: claims.sub,
    name: typeof claims.name === 'string' ? claims.name : '',
    ...(typeof claims.exp === 'number' ? { exp: claims.exp } : {}),
    subAllow: Array.isArray(allow) ? allow.filter((s): s is string => typeof s === 'string') : [],
  }
}

/**
 * The inbox prefix a user may subscribe under: the first subscribe permission of the form `_INBOX.<…>.>`
 * (zonegate tokens carry exactly one: `_INBOX.zone.<zone>`, `_INBOX.reconciler`, `_INBOX.viewer`). Undefined
 * when the user may subscribe to any inbox. Pure.
 */
export function inboxPrefixOf(subAllow: readonly string[]): string | undefined {
  if (subAllow.length === 0 || subAllow.some((s) => s === '>' || s === '_INBOX.>')) return undefined
  for (const s of subAllow) {
    const m = /^(_INBOX(?:\.[^.*>\s]+)+)\.>$/.exec(s)
    if (m) return m[1]
  }
  return undefined
}

function readFlagFile(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'unreadable')
    throw new UsageError(`${flag} ${path}: cannot read the file (${why})`)
  }
}

/**
 * The connection options of the NATS flags (see the module comment). Reads the files named by the flags;
 * throws UsageError naming the flag and the file when one is missing, unreadable or not what it should be.
 * No flags: no options (an open server, as before). The client is imported only when `--creds` is given.
 */
export async function natsConnectOptions(flags: NatsFlags, now: Date = new Date()): Promise<NatsAuthOptions> {
  const out: NatsAuthOptions = {}
  if (flags.creds) {
    const text = readFlagFile(flags.creds, '--creds')
    let parsed: ParsedCreds
    try {
      parsed = parseCredsText(text)
    } catch (err) {
      throw new UsageError(`--creds ${flags.creds}: ${(err as Error).message}`)
    }
    // the server refuses an expired token anyway ("Authorization Violation"): say why, before connecting
    if (parsed.exp !== undefined && parsed.exp * 1000 <= now.getTime())
      throw new UsageError(
        `--creds ${flags.creds}: the token expired at ${new Date(parsed.exp * 1000).toISOString()} ` +
          '(`zonegate token` writes a new one)',
      )
    // The file is read again at every (re)connect, so a renewed token replaces an expiring one without a restart
    // (same scope and zone: the inbox prefix does not change); an unreadable or malformed file keeps the last good.
    let last = new TextEncoder().encode(text)
    const path = flags.creds
    const current = () => {
      try {
        const again = readFileSync(path, 'utf8')
        if (parseCredsText(again).subAllow.join() === parsed.subAllow.join()) last = new TextEncoder().encode(again)
      } catch {
        // keep the last good token
      }
      return last
    }
    // loaded on use: keeps the NATS client out of the start-up of commands that never connect
    const { credsAuthenticator } = await import('@nats-io/transport-node')
    out.authenticator = credsAuthenticator(current)
    const prefix = inboxPrefixOf(parsed.subAllow)
    if (prefix) out.inboxPrefix = prefix
  }
  if ((flags.natsCert === undefined) !== (flags.natsKey === undefined))
    throw new UsageError('--nats-cert and --nats-key go together (a client certificate and its key)')
  if (flags.natsCa || flags.natsCert) {
    out.tls = {
      ...(flags.natsCa ? { ca: readFlagFile(flags.natsCa, '--nats-ca') } : {}),
      ...(flags.natsCert ? { cert: readFlagFile(flags.natsCert, '--nats-cert') } : {}),
      ...(flags.natsKey ? { key: readFlagFile(flags.natsKey, '--nats-key') } : {}),
    }
    if (out.tls.ca !== undefined && !out.tls.ca.includes('-----BEGIN CERTIFICATE-----'))
      throw new UsageError(`--nats-ca ${flags.natsCa}: not a PEM certificate`)
    if (out.tls.cert !== undefined && !out.tls.cert.includes('-----BEGIN CERTIFICATE-----'))
      throw new UsageError(`--nats-cert ${flags.natsCert}: not a PEM certificate`)
    if (out.tls.key !== undefined && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(out.tls.key))
      throw new UsageError(`--nats-key ${flags.natsKey}: not a PEM private key`)
  }
  return out
}

/** Adds `--nats`, `--creds`, `--nats-ca`, `--nats-cert` and `--nats-key` to `cmd` (every command that uses NATS). */
export function addNatsOptions<C extends Command>(cmd: C): C {
  for (const o of natsOptions()) cmd.addOption(o)
  return cmd
}
