import { readFile, writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { type Command, Option } from 'commander'
import { parseDuration, UsageError, withExamples } from '../lib/common.js'
import { parseCredsText } from '../lib/nats-connect.js'
import { SCOPES, type Scope } from '../schemas/nats-permissions.js'
import { DEFAULT_AUTH_DIR } from './auth-store.js'

/**
 * `zonegate auth init`, `zonegate auth revoke` and `zonegate token` (docs/security.md): the keys of zonegate's
 * NATS account and the scoped, expiring tokens (`.creds` files) every process connects with. The work is in
 * cli/auth-store.ts, loaded on use.
 */

const authDirOption = () =>
  new Option('--auth-dir <dir>', `folder of the operator/account keys and nats-auth.conf`).default(DEFAULT_AUTH_DIR)

const reloadHint = (config: string) =>
  `apply it: nats-server --signal reload (or kill -HUP <nats-server pid>); the server must run with a config that includes ${config}`

/** `--signal-pid`: SIGHUP to nats-server (a reload applies the rewritten configuration); else how to do it. */
function signal(pidFlag: string | undefined, config: string): void {
  if (pidFlag === undefined) {
    process.stdout.write(`${reloadHint(config)}\n`)
    return
  }
  const pid = Number(pidFlag)
  if (!Number.isInteger(pid) || pid <= 1) throw new UsageError(`--signal-pid: expected a pid, got "${pidFlag}"`)
  try {
    process.kill(pid, 'SIGHUP')
  } catch (err) {
    throw new UsageError(`--signal-pid ${pid}: cannot signal it (${(err as NodeJS.ErrnoException).code})`)
  }
  process.stdout.write(`sent SIGHUP to ${pid}: nats-server reloads ${config}\n`)
}

interface TokenFlags {
  zone?: string
  scope: Scope
  validFor: string
  name?: string
  out?: string
  force?: boolean
  authDir: string
}

/** Registers `auth init`, `auth revoke` and `token`. */
export function registerAuthCommands(program: Command): void {
  const auth = program.command('auth').description('keys of the NATS account and revocation of tokens')
  withExamples(
    auth
      .command('init')
      .description('create the operator, account and signing keys and the nats-server auth configuration')
      .addOption(authDirOption())
      .option('--store-dir <dir>', 'JetStream store of nats-server.conf (default: <auth-dir>/../nats)')
      .action(async (flags: { authDir: string; storeDir?: string }) => {
        const { initAuth } = await import('./auth-store.js')
        const r = await initAuth(flags.authDir, flags.storeDir ? { storeDir: flags.storeDir } : {})
        const dir = resolve(flags.authDir)
        process.stdout.write(
          r.created
            ? `created the zonegate NATS account in ${dir} (keys mode 0600)\n`
            : `${dir} already holds the zonegate NATS account: keys kept, configuration rewritten\n`,
        )
        process.stdout.write(`account ${r.state.account}\nsigning key ${r.state.signingKeys.at(-1)}\n`)
        process.stdout.write(
          `nats-server configuration: ${r.server} (includes ${r.config})\n  nats-server -c ${r.server}\n`,
        )
      }),
    [
      'zonegate auth init --auth-dir /etc/zonegate/auth --store-dir /var/lib/nats',
      'nats-server -c /etc/zonegate/auth/nats-server.conf',
    ],
  )
  withExamples(
    auth
      .command('revoke')
      .description('revoke a token before it expires (rewrites nats-auth.conf; reload nats-server to apply)')
      .option('--user <key>', 'public key of the token user (U…; `zonegate token` prints it)')
      .option('--token <file>', 'the .creds file of the token to revoke (only its public part is read)')
      .option('--signal-pid <pid>', 'send SIGHUP to this nats-server process after rewriting the configuration')
      .addOption(authDirOption())
      .action(async (flags: { user?: string; token?: string; signalPid?: string; authDir: string }) => {
        if ((flags.user === undefined) === (flags.token === undefined))
          throw new UsageError('give exactly one of --user KEY and --token FILE')
        let user = flags.user as string
        if (flags.token !== undefined) {
          const text = await readFile(flags.token, 'utf8').catch(() => {
            throw new UsageError(`--token ${flags.token}: cannot read the file`)
          })
          try {
            user = parseCredsText(text).user
          } catch (err) {
            throw new UsageError(`--token ${flags.token}: ${(err as Error).message}`)
          }
        }
        const { revokeUser } = await import('./auth-store.js')
        const r = await revokeUser(flags.authDir, user)
        process.stdout.write(`revoked ${user}${r.known ? '' : ' (not a token issued from this folder)'}\n`)
        signal(flags.signalPid, r.config)
      }),
    [
      'zonegate auth revoke --token zone-a-egress.creds --signal-pid "$(pgrep -o nats-server)"',
      'zonegate auth revoke --user UABC…',
    ],
  )

  withExamples(
    auth
      .command('rotate')
      .description('rotate the signing key of tokens: new key first (old tokens still valid), then --finish')
      .option('--finish', 'keep only the current signing key: tokens signed by the previous one are refused')
      .option('--signal-pid <pid>', 'send SIGHUP to this nats-server process after rewriting the configuration')
      .addOption(authDirOption())
      .action(async (flags: { finish?: boolean; signalPid?: string; authDir: string }) => {
        const { rotateSigningKey } = await import('./auth-store.js')
        const r = await rotateSigningKey(flags.authDir, { finish: flags.finish ?? false })
        process.stdout.write(
          flags.finish
            ? `signing key ${r.current} is now the only one: tokens signed by earlier keys are refused after the reload\n`
            : `new signing key ${r.current}; still trusted: ${r.trusted.filter((k) => k !== r.current).join(', ')}\n` +
                're-issue every token (zonegate token), then run `zonegate auth rotate --finish`\n',
        )
        signal(flags.signalPid, r.config)
      }),
    [
      'zonegate auth rotate --signal-pid "$(pgrep -o nats-server)"   # then re-issue every token',
      'zonegate auth rotate --finish --signal-pid "$(pgrep -o nats-server)"',
    ],
  )

  withExamples(
    program
      .command('token')
      .description('write a scoped, expiring NATS token (.creds): egress of one zone, reconciler or viewer')
      .addOption(new Option('--scope <scope>', 'what the token may do').choices(SCOPES).default('egress'))
      .option('--zone <zone>', 'zone of an egress token (required with --scope egress)')
      .option('--valid-for <duration>', 'lifetime (e.g. 720h, 24h, 30m)', '720h')
      .option('--name <name>', 'name in the JWT (default <scope>-<zone> or <scope>)')
      .option('--out <file>', 'where to write the .creds file (mode 0600; default <name>.creds)')
      .option('--force', 'overwrite --out if it exists')
      .addOption(authDirOption())
      .action(async (flags: TokenFlags) => {
        if (flags.scope === 'egress' && !flags.zone) throw new UsageError('--scope egress needs --zone')
        if (flags.scope !== 'egress' && flags.zone) throw new UsageError(`--zone is only for --scope egress`)
        const validForMs = parseDuration(flags.validFor, '--valid-for')
        if (validForMs < 1000) throw new UsageError('--valid-for: must be at least 1s')
        const { issueToken } = await import('./auth-store.js')
        const { creds, token } = await issueToken(flags.authDir, {
          scope: flags.scope,
          ...(flags.zone ? { zone: flags.zone } : {}),
          validForMs,
          ...(flags.name ? { name: flags.name } : {}),
        })
        const out = flags.out ?? `${token.name}.creds`
        try {
          await writeFile(out, creds, { mode: 0o600, flag: flags.force ? 'w' : 'wx' })
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          throw new UsageError(
            code === 'EEXIST'
              ? `--out ${out}: exists (use --force to overwrite)`
              : `--out ${out}: cannot write (${code})`,
          )
        }
        const { chmod } = await import('node:fs/promises')
        await chmod(out, 0o600)
        process.stdout.write(
          `wrote ${out} (mode 0600): ${token.scope}${token.zone ? ` of zone ${token.zone}` : ''}, user ${token.user}, ` +
            `expires ${new Date(token.expires * 1000).toISOString()}\n`,
        )
      }),
    [
      'zonegate token --zone zone-a --scope egress --valid-for 720h --out zone-a.creds',
      'zonegate token --scope reconciler --valid-for 8760h --out reconciler.creds',
      'zonegate token --scope viewer --valid-for 24h && NATS_CREDS=viewer.creds zonegate status',
    ],
  )
}
