import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, waitFor } from 'xstate'
import type { MeshCert } from './egress-key.js'
import { identityMachine, isFresh, renewDelayOf } from './identity.machine.js'

const cert = (notBefore: number, notAfter: number, serial = '01'): MeshCert => ({
  mesh: 'default',
  cert: 'PEM',
  caCerts: [],
  notBefore,
  notAfter,
  serial,
})

describe('identity machine', () => {
  it('identity machine - a fresh saved certificate serves without a request; an old one is renewed', () => {
    const now = Date.now()
    expect(isFresh(cert(now - 1000, now + 3_600_000), now)).toBe(true)
    expect(isFresh(cert(now - 3_000_000, now + 600_000), now)).toBe(false) // past 2/3
    expect(isFresh(cert(now - 7_200_000, now - 1), now)).toBe(false)
    expect(isFresh(undefined, now)).toBe(false)
    expect(renewDelayOf({ cert: cert(0, 3000), jitter: 0.5 }, 1000)).toBe(1000)
  })

  it('identity machine - requests, retries after a failure, installs the issued certificate', async () => {
    let calls = 0
    const installed: MeshCert[] = []
    const now = Date.now()
    const m = identityMachine.provide({
      actors: {
        requestCert: fromPromise<MeshCert, { mesh: string }>(async () => {
          calls++
          if (calls === 1) throw new Error('NATS not connected')
          return cert(now, now + 3_600_000, String(calls))
        }),
      },
      actions: { installCert: (_, c: MeshCert) => installed.push(c) },
      delays: { retry: 10 },
    })
    const a = createActor(m, { input: { mesh: 'default' } }).start()
    await waitFor(a, (s) => s.value === 'valid', { timeout: 5000 })
    expect(calls).toBe(2)
    expect(installed.map((c) => c.serial)).toEqual(['2'])
    expect(a.getSnapshot().context).toMatchObject({ attempt: 0, cert: { serial: '2' } })
    expect(a.getSnapshot().context.renewAt).toBeGreaterThan(now + 2_000_000)
    a.send({ type: 'renew' })
    await waitFor(a, (s) => s.value === 'valid' && s.context.cert?.serial === '3', { timeout: 5000 })
    expect(installed.map((c) => c.serial)).toEqual(['2', '3'])
    a.send({ type: 'stop' })
    expect(a.getSnapshot().status).toBe('done')
  })

  it('identity machine - a failing request keeps the current certificate and records the error', async () => {
    const now = Date.now()
    const m = identityMachine.provide({
      actors: {
        requestCert: fromPromise<MeshCert, { mesh: string }>(async () => {
          throw new Error('certificate refused: unknown mesh')
        }),
      },
      delays: { retry: 60_000 },
    })
    const old = cert(now - 3_000_000, now + 600_000)
    const a = createActor(m, { input: { mesh: 'default', cert: old } }).start()
    await waitFor(a, (s) => s.value === 'backoff', { timeout: 5000 })
    expect(a.getSnapshot().context).toMatchObject({
      attempt: 1,
      lastError: 'certificate refused: unknown mesh',
      cert: old,
    })
    a.stop()
  })
})
