import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  fromSeed,
  type KeyPair,
} from '@nats-io/jwt'
import { UsageError } from '../lib/common.js'
import { permissionsFor, type Scope } from '../schemas/nats-permissions.js'
import { zoneToken } from '../schemas/subjects.js'

/**
 * zonegate's NATS decentralized auth (docs/security.md), on disk in one folder (`--auth-dir`, default
 * `.zonegate/auth`; the demo uses `.data/auth`):
 *
 * | file | secret | what |
 * |---|---|---|
 * | `operator.nk` | yes (0600) | operator seed: signs the account JWTs |
 * | `system-account.nk` | yes (0600) | system account seed (nats-server's `system_account`) |
 * | `zonegate-account.nk` | yes (0600) | the zonegate account's identity seed |
 * | `zonegate-signing.nk` | yes (0600) | the account's signing key seed: signs every token (user JWT) |
 * | `auth.json` | no | public keys, the revocation list, the tokens issued (public key, scope, zone, expiry) |
 * | `nats-auth.conf` | no | the auth part of nats-server's configuration: `operator`, `system_account`, `resolver: MEMORY`, `resolver_preload` |
 * | `nats-server.conf` | no | a whole server configuration: `jetstream { store_dir }` and `include "nats-auth.conf"` (written once; edit it freely) |
 *
 * The nats-server configuration is derived from `auth.json` and the seeds on every change (`writeServerConfig`):
 * a revocation rewrites the account JWT and the file, applied by `nats-server --signal reload` (SIGHUP). The
 * JetStream store directory must be in the configuration file, not only on the command line (`-js -sd`): on
 * 2.9.10 a reload of a file without `jetstream {}` shuts JetStream down, and one with `jetstream: enabled`
 * but the directory given by `-sd` is refused ("not supported for jetstream storage dir").
 * JWTs are built with @nats-io/jwt (the NATS project's own library) and nkeys with @nats-io/nkeys.
 */

export const AUTH_FILES = {
  operatorSeed: 'operator.nk',
  systemSeed: 'system-account.nk',
  accountSeed: 'zonegate-account.nk',
  signingSeed: 'zonegate-signing.nk',
  state: 'auth.json',
  config: 'nats-auth.conf',
  server: 'nats-server.conf',
} as const

export const DEFAULT_AUTH_DIR = '.zonegate/auth'
export const ACCOUNT_NAME = 'ZONEGATE'
export const SYSTEM_ACCOUNT_NAME = 'SYS'

export interface IssuedToken {
  user: string
  name: string
  scope: Scope
  zone?: string
  /** Seconds since the epoch. */
  issuedAt: number
  expires: number
}

export interface AuthState {
  version: 1
  operator: string
  systemAccount: string
  account: string
  signingKeys: string[]
  /** user public key (or `*`) → revoked at (seconds): tokens of that user issued at or before are refused. */
  revocations: Record<string, number>
  issued: IssuedToken[]
  /** Signed once at init and kept (public). */
  operatorJwt?: string
  systemAccountJwt?: string
}

const enc = new TextEncoder()
const dec = new TextDecoder()
const nowSeconds = (now: Date) => Math.floor(now.getTime() / 1000)

/** Writes a file atomically (temp + rename) with `mode` (0600 for secrets). */
async function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, data, { mode })
  await chmod(tmp, mode)
  await rename(tmp, path)
}

async function readSeed(dir: string, file: string): Promise<KeyPair> {
  const path = join(dir, file)
  let text: string
  try {
    text = (await readFile(path, 'utf8')).trim()
  } catch {
    throw new UsageError(`${path}: cannot read the key (run \`zonegate auth init --auth-dir ${dir}\` first)`)
  }
  try {
    return fromSeed(enc.encode(text))
  } catch {
    throw new UsageError(`${path}: not an nkey seed`)
  }
}

/** Reads `auth.json` of the folder; UsageError naming it when absent or malformed. */
export async function readAuthState(dir: string): Promise<AuthState> {
  const path = join(dir, AUTH_FILES.state)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch {
    throw new UsageError(`${path}: not found (run \`zonegate auth init --auth-dir ${dir}\` first)`)
  }
  try {
    const s = JSON.parse(text) as AuthState
    if (s.version !== 1 || typeof s.account !== 'string' || !Array.isArray(s.signingKeys)) throw new Error('shape')
    s.revocations ??= {}
    s.issued ??= []
    return s
  } catch {
    throw new UsageError(`${path}: not a zonegate auth state file`)
  }
}

const ALL = -1
/** Account limits: every NATS limit unlimited (@nats-io/jwt copies limits verbatim: a missing one is 0). */
const UNLIMITED = {
  subs: ALL,
  data: ALL,
  payload: ALL,
  imports: ALL,
  exports: ALL,
  conn: ALL,
  leaf: ALL,
  wildcards: true,
}
const JETSTREAM = { mem_storage: ALL, disk_storage: ALL, streams: ALL, consumer: ALL, max_ack_pending: ALL }

/** Re-signs the account JWTs from the state and writes `nats-auth.conf`. Returns its path. */
export async function writeServerConfig(dir: string, state: AuthState): Promise<string> {
  const operator = await readSeed(dir, AUTH_FILES.operatorSeed)
  // The operator and system account JWTs are signed once (at init) and kept in auth.json: nats-server refuses a
  // reload that changes the operator JWT. Only the zonegate account (revocations, signing keys) changes later.
  state.operatorJwt ??= await encodeOperator('zonegate', operator, { system_account: state.systemAccount })
  state.systemAccountJwt ??= await encodeAccount(
    SYSTEM_ACCOUNT_NAME,
    state.systemAccount,
    { limits: UNLIMITED },
    { signer: operator },
  )
  const operatorJwt = state.operatorJwt
  const systemJwt = state.systemAccountJwt
  const accountJwt = await encodeAccount(
    ACCOUNT_NAME,
    state.account,
    {
      limits: { ...UNLIMITED, ...JETSTREAM },
      signing_keys: state.signingKeys,
      ...(Object.keys(state.revocations).length > 0 ? { revocations: state.revocations } : {}),
    },
    { signer: operator },
  )
  const text = [
    '# Written by `zonegate auth init`; `zonegate auth revoke` rewrites it. Do not edit by hand.',
    '# Decentralized NATS auth: every client needs a token (`zonegate token`); there is no `authorization {}` block.',
    `operator: "${operatorJwt}"`,
    `system_account: "${state.systemAccount}"`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${state.systemAccount}: "${systemJwt}"`,
    `  ${state.account}: "${accountJwt}"`,
    '}',
    '',
  ].join('\n')
  const path = join(dir, AUTH_FILES.config)
  await writeFileAtomic(path, text, 0o644)
  return path
}

async function exists(path: string): Promise<boolean> {
  return readFile(path).then(
    () => true,
    () => false,
  )
}

/**
 * `zonegate auth init`: creates the operator, system account, zonegate account and signing key (seeds 0600 in a
 * 0700 folder), `auth.json` and `nats-auth.conf`. An existing folder is kept as it is (its config rewritten)
 * and `created` is false: keys are never replaced silently.
 */
export async function initAuth(
  dir: string,
  opts: { storeDir?: string } = {},
): Promise<{ created: boolean; state: AuthState; config: string; server: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await chmod(dir, 0o700)
  const server = join(dir, AUTH_FILES.server)
  if (!(await exists(server))) {
    const store = resolve(opts.storeDir ?? join(dirname(resolve(dir)), 'nats'))
    const text = [
      '# nats-server configuration for zonegate (written once by `zonegate auth init`; edit freely).',
      '# Keep the JetStream store here, not only in -sd: a reload (SIGHUP) re-reads this file.',
      `jetstream { store_dir: ${JSON.stringify(store)} }`,
      'include "nats-auth.conf"',
      '',
    ].join('\n')
    await writeFileAtomic(server, text, 0o644)
  }
  if (await exists(join(dir, AUTH_FILES.state))) {
    const state = await readAuthState(dir)
    return { created: false, state, config: await writeServerConfig(dir, state), server }
  }
  const operator = createOperator()
  const system = createAccount()
  const account = createAccount()
  const signing = createAccount()
  const seeds: [string, KeyPair][] = [
    [AUTH_FILES.operatorSeed, operator],
    [AUTH_FILES.systemSeed, system],
    [AUTH_FILES.accountSeed, account],
    [AUTH_FILES.signingSeed, signing],
  ]
  for (const [file, kp] of seeds) await writeFileAtomic(join(dir, file), `${dec.decode(kp.getSeed())}\n`, 0o600)
  const state: AuthState = {
    version: 1,
    operator: operator.getPublicKey(),
    systemAccount: system.getPublicKey(),
    account: account.getPublicKey(),
    signingKeys: [signing.getPublicKey()],
    revocations: {},
    issued: [],
  }
  const config = await writeServerConfig(dir, state)
  await writeFileAtomic(join(dir, AUTH_FILES.state), `${JSON.stringify(state, null, 2)}\n`, 0o644)
  return { created: true, state, config, server }
}

export interface TokenRequest {
  scope: Scope
  zone?: string
  validForMs: number
  name?: string
  now?: Date
}

/**
 * Mints a token: a new user nkey and a user JWT signed by the account's signing key, with the scope's
 * permissions (schemas/nats-permissions.ts) and an expiry. Returns the `.creds` text (JWT + user seed: a
 * secret) and records the token's public part in `auth.json`.
 */
export async function issueToken(dir: string, req: TokenRequest): Promise<{ creds: Uint8Array; token: IssuedToken }> {
  const state = await readAuthState(dir)
  const signer = await readSeed(dir, AUTH_FILES.signingSeed)
  if (!state.signingKeys.includes(signer.getPublicKey()))
    throw new UsageError(`${join(dir, AUTH_FILES.signingSeed)}: not a signing key of the account in auth.json`)
  const now = req.now ?? new Date()
  const iat = nowSeconds(now)
  const exp = iat + Math.max(1, Math.round(req.validForMs / 1000))
  const user = createUser()
  const perms = permissionsFor(req.scope, req.zone)
  const name = req.name ?? (req.zone === undefined ? req.scope : `${req.scope}-${zoneToken(req.zone)}`)
  const jwt = await encodeUser(
    name,
    user,
    state.account,
    {
      pub: { allow: perms.pub, ...(perms.pubDeny ? { deny: perms.pubDeny } : {}) },
      sub: { allow: perms.sub },
      tags: [`scope:${req.scope}`, ...(req.zone === undefined ? [] : [`zone:${zoneToken(req.zone).toLowerCase()}`])],
    },
    { signer, exp },
  )
  const token: IssuedToken = {
    user: user.getPublicKey(),
    name,
    scope: req.scope,
    ...(req.zone === undefined ? {} : { zone: req.zone }),
    issuedAt: iat,
    expires: exp,
  }
  state.issued.push(token)
  await writeFileAtomic(join(dir, AUTH_FILES.state), `${JSON.stringify(state, null, 2)}\n`, 0o644)
  return { creds: fmtCreds(jwt, user), token }
}

/**
 * Revokes a user (its public key `U…`): every token of that user issued until now is refused once nats-server
 * reloads the rewritten configuration. Returns the config path. UsageError on a key that is not a user key.
 */
export async function revokeUser(
  dir: string,
  user: string,
  now = new Date(),
): Promise<{ config: string; known: boolean }> {
  if (!/^U[A-Z2-7]{55}$/.test(user)) throw new UsageError(`--user: expected a user public key (U…, 56 characters)`)
  const state = await readAuthState(dir)
  state.revocations[user] = nowSeconds(now)
  await writeFileAtomic(join(dir, AUTH_FILES.state), `${JSON.stringify(state, null, 2)}\n`, 0o644)
  return { config: await writeServerConfig(dir, state), known: state.issued.some((t) => t.user === user) }
}

/**
 * Rotates the account's signing key (the key that signs tokens). Step 1 (`finish` false): a new signing key
 * becomes the one `zonegate token` uses; the old public key stays trusted, so tokens already issued keep working
 * while new ones are issued. Step 2 (`finish` true): only the current signing key stays; tokens signed by any other
 * are refused after the reload. Both rewrite nats-auth.conf (apply with a reload). Returns the keys trusted now.
 */
export async function rotateSigningKey(
  dir: string,
  opts: { finish?: boolean } = {},
): Promise<{ config: string; current: string; trusted: string[] }> {
  const state = await readAuthState(dir)
  let current = (await readSeed(dir, AUTH_FILES.signingSeed)).getPublicKey()
  if (opts.finish) state.signingKeys = [current]
  else {
    const next = createAccount()
    await writeFileAtomic(join(dir, AUTH_FILES.signingSeed), `${dec.decode(next.getSeed())}\n`, 0o600)
    current = next.getPublicKey()
    state.signingKeys = [...state.signingKeys.filter((k) => k !== current), current]
  }
  await writeFileAtomic(join(dir, AUTH_FILES.state), `${JSON.stringify(state, null, 2)}\n`, 0o644)
  return { config: await writeServerConfig(dir, state), current, trusted: state.signingKeys }
}
