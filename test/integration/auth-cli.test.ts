import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseCredsText } from '../../lib/nats-connect.js'
import { runCli } from '../helpers/cli.js'

/**
 * The built CLI's `auth init`, `token`, `auth revoke` and `auth rotate`: files and modes, what is printed (never a
 * seed), refusals with exit 2. The server side of the same files is in auth-permissions.test.ts.
 */
let dir: string
const auth = () => join(dir, 'auth')

const zonegate = (args: string[]) => runCli(args)
const mode = async (p: string) => (await stat(p)).mode & 0o777
const seeds = async () =>
  Promise.all(
    ['operator.nk', 'system-account.nk', 'zonegate-account.nk', 'zonegate-signing.nk'].map(async (f) =>
      (await readFile(join(auth(), f), 'utf8')).trim(),
    ),
  )

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'zonegate-auth-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('auth cli', () => {
  it('auth cli - init writes seeds 0600 in a 0700 folder and the server config; a second init keeps the keys', async () => {
    const first = await zonegate(['auth', 'init', '--auth-dir', auth(), '--store-dir', join(dir, 'store')])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toMatch(/created the zonegate NATS account/)
    expect(await mode(auth())).toBe(0o700)
    for (const f of ['operator.nk', 'system-account.nk', 'zonegate-account.nk', 'zonegate-signing.nk'])
      expect(await mode(join(auth(), f)), f).toBe(0o600)
    const conf = await readFile(join(auth(), 'nats-auth.conf'), 'utf8')
    expect(conf).toMatch(/^resolver: MEMORY$/m)
    expect(conf).toMatch(/^operator: "ey/m)
    expect(conf).not.toMatch(/^\s*authorization\s*[:{]/m)
    expect(await readFile(join(auth(), 'nats-server.conf'), 'utf8')).toContain(
      `jetstream { store_dir: ${JSON.stringify(join(dir, 'store'))} }`,
    )
    const before = await seeds()
    for (const s of before) expect(first.stdout).not.toContain(s)
    const again = await zonegate(['auth', 'init', '--auth-dir', auth()])
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/already holds the zonegate NATS account: keys kept/)
    expect(await seeds()).toEqual(before)
  })

  it('auth cli - token writes a 0600 .creds of the scope, prints no secret, refuses to overwrite', async () => {
    const out = join(dir, 'a.creds')
    const r = await zonegate(['token', '--auth-dir', auth(), '--zone', 'zone-a', '--valid-for', '2h', '--out', out])
    expect(r.code, r.stderr).toBe(0)
    expect(await mode(out)).toBe(0o600)
    const text = await readFile(out, 'utf8')
    const creds = parseCredsText(text)
    expect(creds.subAllow).toEqual(['_INBOX.zone.zone-a.>'])
    expect(creds.exp! - Date.now() / 1000).toBeGreaterThan(7100)
    expect(creds.exp! - Date.now() / 1000).toBeLessThan(7300)
    expect(r.stdout).toContain(creds.user)
    const seed = /SU[A-Z2-7]{50,}/.exec(text)![0]
    expect(r.stdout + r.stderr).not.toContain(seed)
    const again = await zonegate(['token', '--auth-dir', auth(), '--zone', 'zone-a', '--out', out])
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/exists \(use --force/)
    expect(await readFile(out, 'utf8')).toBe(text)
    const forced = await zonegate(['token', '--auth-dir', auth(), '--zone', 'zone-a', '--out', out, '--force'])
    expect(forced.code).toBe(0)
    expect(await readFile(out, 'utf8')).not.toBe(text)
  })

  it('auth cli - usage errors: egress without zone, zone on another scope, unknown scope, no auth folder', async () => {
    const cases: [string[], RegExp][] = [
      [['token', '--auth-dir', auth(), '--scope', 'egress'], /--scope egress needs --zone/],
      [['token', '--auth-dir', auth(), '--scope', 'viewer', '--zone', 'zone-a'], /--zone is only for --scope egress/],
      [['token', '--auth-dir', auth(), '--scope', 'admin'], /Allowed choices are egress, reconciler, viewer/],
      [
        ['token', '--auth-dir', join(dir, 'none'), '--scope', 'viewer'],
        /auth\.json: not found \(run `zonegate auth init/,
      ],
      [['auth', 'revoke', '--auth-dir', auth()], /exactly one of --user KEY and --token FILE/],
      [['auth', 'revoke', '--auth-dir', auth(), '--user', 'ABC'], /expected a user public key/],
    ]
    for (const [args, message] of cases) {
      const r = await zonegate(args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toMatch(message)
    }
  })

  it('auth cli - revoke --token reads the public part and records it in the account; rotate adds then keeps a key', async () => {
    const out = join(dir, 'v.creds')
    await zonegate(['token', '--auth-dir', auth(), '--scope', 'viewer', '--out', out])
    const user = parseCredsText(await readFile(out, 'utf8')).user
    const r = await zonegate(['auth', 'revoke', '--auth-dir', auth(), '--token', out])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`revoked ${user}`)
    expect(r.stdout).toMatch(/nats-server --signal reload/)
    const state = JSON.parse(await readFile(join(auth(), 'auth.json'), 'utf8')) as {
      revocations: Record<string, number>
      signingKeys: string[]
    }
    expect(Object.keys(state.revocations)).toEqual([user])
    const account = (await readFile(join(auth(), 'nats-auth.conf'), 'utf8')).match(/^ {2}A\w+: "([^"]+)"$/gm)!
    const claims = account.map((l) => JSON.parse(Buffer.from(l.split('.')[1]!, 'base64url').toString()))
    expect(claims.some((c) => c.nats?.revocations?.[user] !== undefined)).toBe(true)

    const rot = await zonegate(['auth', 'rotate', '--auth-dir', auth()])
    expect(rot.code, rot.stderr).toBe(0)
    const mid = JSON.parse(await readFile(join(auth(), 'auth.json'), 'utf8')) as { signingKeys: string[] }
    expect(mid.signingKeys).toHaveLength(2)
    expect(mid.signingKeys[0]).toBe(state.signingKeys[0])
    const fin = await zonegate(['auth', 'rotate', '--auth-dir', auth(), '--finish'])
    expect(fin.code).toBe(0)
    const end = JSON.parse(await readFile(join(auth(), 'auth.json'), 'utf8')) as { signingKeys: string[] }
    expect(end.signingKeys).toEqual([mid.signingKeys[1]])
    await writeFile(join(dir, 'junk.creds'), 'not creds')
    const junk = await zonegate(['auth', 'revoke', '--auth-dir', auth(), '--token', join(dir, 'junk.creds')])
    expect(junk.code).toBe(2)
    expect(junk.stderr).toMatch(/junk\.creds: not a NATS credentials file/)
  })
})
