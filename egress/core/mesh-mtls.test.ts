import { describe, expect, it } from 'vitest'
import { allowMatcher, callerService, clientCertRefusal, MtlsRefusal, renewDelayMs, retryDelayMs } from './mesh-mtls.js'

describe('mesh-mtls', () => {
  it.each([
    ['URI:spiffe://default/web', 'default', 'web'],
    ['DNS:x.test, URI:spiffe://default/web', 'default', 'web'],
    ['URI:kuma://kuma.io/service/web, URI:spiffe://default/web', 'default', 'web'],
    ['URI:spiffe://other/web', 'default', undefined],
    ['URI:spiffe://default/', 'default', undefined],
    ['URI:spiffe://default/a/b', 'default', undefined],
    ['URI:spiffe://defaultx/web', 'default', undefined],
    ['DNS:spiffe://default/web', 'default', undefined],
    ['URI:"spiffe://default/we,b"', 'default', 'we,b'],
    ['', 'default', undefined],
    [undefined, 'default', undefined],
  ])('mesh-mtls - callerService(%j, %s) is %j', (san, mesh, want) => {
    expect(callerService(san, mesh)).toBe(want)
  })

  it('mesh-mtls - allow: absent and [] allow nobody, * everyone, else the listed services', () => {
    expect(allowMatcher(undefined)('web')).toBe(false)
    expect(allowMatcher([])('web')).toBe(false)
    expect(allowMatcher(['*'])('anything')).toBe(true)
    // Allow Mesh + Deny MeshService bad: compile emits allow ["*"] with deny ["bad"]
    const exceptBad = allowMatcher(['*'], ['bad'])
    expect(exceptBad('web')).toBe(true)
    expect(exceptBad('bad')).toBe(false)
    expect(allowMatcher(['web', 'bad'], ['bad'])('bad')).toBe(false)
    expect(allowMatcher(['web', 'bad'], ['bad'])('web')).toBe(true)
    expect(allowMatcher([], ['bad'])('web')).toBe(false)
    const m = allowMatcher(['web', 'billing'])
    expect([m('web'), m('billing'), m('orders'), m('')]).toEqual([true, true, false, false])
  })

  it.each([
    [false, null, undefined, MtlsRefusal.NoClientCert],
    [true, 'CERT_HAS_EXPIRED', 'web', MtlsRefusal.ClientCertExpired],
    [true, 'CERT_NOT_YET_VALID', 'web', MtlsRefusal.ClientCertExpired],
    [true, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'web', MtlsRefusal.ClientCertUntrusted],
    [true, 'VERIFY_UNAVAILABLE', 'web', MtlsRefusal.ClientCertUntrusted],
    [true, null, undefined, MtlsRefusal.WrongMesh],
    [true, null, 'web', undefined],
  ])('mesh-mtls - clientCertRefusal(%s, %s, %s) is %s', (has, err, svc, want) => {
    expect(clientCertRefusal(has, err, svc)).toBe(want)
  })

  it('mesh-mtls - renewal at 2/3 of the lifetime with ±5 % jitter, never negative', () => {
    const day = 86_400_000
    expect(renewDelayMs(0, 3 * day, 0, 0.5)).toBe(2 * day)
    expect(renewDelayMs(0, 3 * day, 0, 0)).toBe(Math.round(3 * day * (2 / 3 - 0.05)))
    expect(renewDelayMs(0, 3 * day, 0, 0.999999)).toBeLessThanOrEqual(Math.round(3 * day * (2 / 3 + 0.05)))
    expect(renewDelayMs(0, 3 * day, day, 0.5)).toBe(day)
    expect(renewDelayMs(0, 3 * day, 3 * day, 0.5)).toBe(0)
  })

  it('mesh-mtls - retries back off exponentially, capped at 30 s, with jitter in the upper half', () => {
    expect(retryDelayMs(1, 0)).toBe(250)
    expect(retryDelayMs(1, 1)).toBe(500)
    expect(retryDelayMs(3, 1)).toBe(2000)
    expect(retryDelayMs(20, 1)).toBe(30_000)
    expect(retryDelayMs(20, 0)).toBe(15_000)
  })
})
