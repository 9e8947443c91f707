import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAccount, createUser, encodeUser, fmtCreds } from '@nats-io/jwt'
import { describe, expect, it } from 'vitest'
import { UsageError } from './common.js'
import { inboxPrefixOf, natsConnectOptions, parseCredsText } from './nats-connect.js'

const dir = mkdtempSync(join(tmpdir(), 'zonegate-nats-connect-'))
const file = (name: string, text: string) => {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

async function credsText(subAllow: string[], exp?: number): Promise<{ text: string; seed: string; user: string }> {
  const account = createAccount()
  const user = createUser()
  const jwt = await encodeUser('t', user, account, { sub: { allow: subAllow } }, exp ? { exp } : {})
  return {
    text: new TextDecoder().decode(fmtCreds(jwt, user)),
    seed: new TextDecoder().decode(user.getSeed()),
    user: user.getPublicKey(),
  }
}

describe('nats-connect', () => {
  it('nats-connect - parses a .creds file: user, expiry, subscribe permissions', async () => {
    const c = await credsText(['_INBOX.zone.zone-a.>'], 2_000_000_000)
    const p = parseCredsText(c.text)
    expect(p.user).toBe(c.user)
    expect(p.exp).toBe(2_000_000_000)
    expect(p.subAllow).toEqual(['_INBOX.zone.zone-a.>'])
  })

  it('nats-connect - the inbox prefix comes from the token (scoped tokens only)', () => {
    expect(inboxPrefixOf(['_INBOX.zone.zone-a.>'])).toBe('_INBOX.zone.zone-a')
    expect(inboxPrefixOf(['zonegate.events.>', '_INBOX.reconciler.>'])).toBe('_INBOX.reconciler')
    expect(inboxPrefixOf([])).toBeUndefined()
    expect(inboxPrefixOf(['>'])).toBeUndefined()
    expect(inboxPrefixOf(['_INBOX.>'])).toBeUndefined()
    expect(inboxPrefixOf(['_INBOX.*.>'])).toBeUndefined()
  })

  it('nats-connect - --creds gives an authenticator and the inbox prefix', async () => {
    const c = await credsText(['_INBOX.zone.zone-b.>'])
    const o = await natsConnectOptions({ creds: file('ok.creds', c.text) })
    expect(typeof o.authenticator).toBe('function')
    expect(o.inboxPrefix).toBe('_INBOX.zone.zone-b')
    expect(o.tls).toBeUndefined()
    expect(await natsConnectOptions({})).toEqual({})
  })

  it('nats-connect - errors name the flag and the file, never the content', async () => {
    const c = await credsText(['_INBOX.viewer.>'])
    const cases: [string, RegExp][] = [
      [join(dir, 'missing.creds'), /--creds .*missing\.creds: cannot read the file \(no such file\)/],
      [file('jwt-only.creds', c.text.replace(/-----BEGIN USER NKEY SEED[\s\S]*/, '')), /jwt-only\.creds: .*NKEY SEED/],
      [
        file('seed-only.creds', `-----BEGIN USER NKEY SEED-----\n${c.seed}\n------END USER NKEY SEED------\n`),
        /seed-only/,
      ],
      [file('garbage.creds', `${c.seed}\n`), /garbage\.creds: not a NATS credentials file/],
    ]
    for (const [path, message] of cases) {
      const err = await natsConnectOptions({ creds: path }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(UsageError)
      expect((err as Error).message).toMatch(message)
      expect((err as Error).message).not.toContain(c.seed)
      expect((err as Error).message).not.toContain(c.seed.slice(2, 20))
    }
  })

  it('nats-connect - an expired token is a usage error naming the file and the expiry', async () => {
    const c = await credsText(['_INBOX.viewer.>'], 1_700_000_000)
    const path = file('expired.creds', c.text)
    await expect(natsConnectOptions({ creds: path })).rejects.toThrow(
      /--creds .*expired\.creds: the token expired at 2023-11-14T22:13:20\.000Z/,
    )
    expect((await natsConnectOptions({ creds: path }, new Date(1_699_999_000_000))).inboxPrefix).toBe('_INBOX.viewer')
  })

  it('nats-connect - TLS files are read and checked; cert and key go together', async () => {
    const ca = file('ca.pem', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
    const key = file('key.pem', '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n')
    const o = await natsConnectOptions({ natsCa: ca, natsCert: ca, natsKey: key })
    expect(o.tls?.ca).toContain('BEGIN CERTIFICATE')
    expect(o.tls?.key).toContain('PRIVATE KEY')
    await expect(natsConnectOptions({ natsCert: ca })).rejects.toThrow(/--nats-cert and --nats-key go together/)
    await expect(natsConnectOptions({ natsCa: key })).rejects.toThrow(/--nats-ca .*key\.pem: not a PEM certificate/)
    await expect(natsConnectOptions({ natsCa: join(dir, 'nope.pem') })).rejects.toThrow(/--nats-ca .*nope\.pem/)
  })
})
