import type { LookupAddress } from 'node:dns'
import { describe, expect, it } from 'vitest'
import { DnsCache } from './dns-cache.js'

/** A resolver that answers when told to, and counts the questions. */
function fakeResolver(answers: Record<string, LookupAddress[]>) {
  const pending: (() => void)[] = []
  let asked = 0
  const resolve = (name: string, _o: unknown, cb: (err: NodeJS.ErrnoException | null, a: LookupAddress[]) => void) => {
    asked++
    pending.push(() => {
      const a = answers[name]
      if (a === undefined) cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' }), [])
      else cb(null, a)
    })
  }
  return {
    resolve,
    flush: () => {
      for (const p of pending.splice(0)) p()
    },
    asked: () => asked,
  }
}

const lookup = (c: DnsCache, name: string, options: { family?: number; all?: boolean } = {}) =>
  new Promise<{ err: string | null; address: unknown; family?: number }>((res) =>
    c.lookup(name, options, (err, address, family) => res({ err: err?.code ?? null, address, family })),
  )

const V4 = { address: '127.0.0.5', family: 4 }
const V6 = { address: '::1', family: 6 }

describe('dns cache', () => {
  it('dns cache - one lookup per name per TTL, shared by the callers waiting for it', async () => {
    let now = 0
    const r = fakeResolver({ 'api.example.test': [V4, V6] })
    const c = new DnsCache(10_000, 100, () => now, r.resolve)
    const first = [lookup(c, 'api.example.test'), lookup(c, 'api.example.test', { all: true })]
    expect(r.asked()).toBe(1)
    r.flush()
    expect(await Promise.all(first)).toEqual([
      { err: null, address: '127.0.0.5', family: 4 },
      { err: null, address: [V4, V6], family: undefined },
    ])
    now = 9_999
    expect(await lookup(c, 'api.example.test', { family: 6 })).toEqual({ err: null, address: '::1', family: 6 })
    expect(r.asked()).toBe(1)
    expect(c.hits).toBe(1)
    now = 10_000 // expired: asked again
    const again = lookup(c, 'api.example.test')
    expect(r.asked()).toBe(2)
    r.flush()
    expect((await again).address).toBe('127.0.0.5')
  })

  it('dns cache - a failed lookup is kept for at most 1 s; a family with no address is ENOTFOUND', async () => {
    let now = 0
    const r = fakeResolver({ 'v4only.test': [V4] })
    const c = new DnsCache(30_000, 100, () => now, r.resolve)
    const miss = lookup(c, 'gone.test')
    r.flush()
    expect((await miss).err).toBe('ENOTFOUND')
    now = 999
    expect((await lookup(c, 'gone.test')).err).toBe('ENOTFOUND')
    expect(r.asked()).toBe(1)
    now = 1000
    void lookup(c, 'gone.test')
    expect(r.asked()).toBe(2)
    const v6 = lookup(c, 'v4only.test', { family: 6, all: true })
    r.flush()
    expect(await v6).toMatchObject({ err: 'ENOTFOUND', address: [] })
  })

  it('dns cache - holds at most maxNames answers, dropping the oldest', async () => {
    const names = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`n${i}.test`, [V4]]))
    const r = fakeResolver(names)
    const c = new DnsCache(60_000, 3, () => 0, r.resolve)
    for (const n of Object.keys(names)) {
      const p = lookup(c, n)
      r.flush()
      await p
    }
    expect(r.asked()).toBe(5)
    void lookup(c, 'n4.test') // newest: cached
    void lookup(c, 'n0.test') // oldest: dropped, asked again
    expect(r.asked()).toBe(6)
  })

  it('dns cache - answers the real resolver for localhost (/etc/hosts, no network)', async () => {
    const c = new DnsCache(10_000)
    const r = await lookup(c, 'localhost', { family: 4 })
    expect(r).toEqual({ err: null, address: '127.0.0.1', family: 4 })
  })
})
