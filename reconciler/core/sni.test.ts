import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { legacyTagSni, meshServiceSni, SniParseError, sniFromTags, tagsFromSni } from './sni.js'

describe('sni', () => {
  const builds: { title: string; mesh: string; service: string; tags?: Record<string, string>; sni: string }[] = [
    { title: 'mesh tag only', mesh: 'default', service: 'orders', sni: 'orders{mesh=default}' },
    {
      title: 'extra tags sorted bytewise',
      mesh: 'default',
      service: 'backend',
      tags: { version: 'v1', env: 'prod', app: 'backend-app' },
      sni: 'backend{app=backend-app,env=prod,mesh=default,version=v1}',
    },
    {
      title: 'kuma.io/zone sorts before mesh',
      mesh: 'm',
      service: 's',
      tags: { 'kuma.io/zone': 'zone-b' },
      sni: 's{kuma.io/zone=zone-b,mesh=m}',
    },
    {
      title: 'service and mesh tags in extras are overridden',
      mesh: 'real',
      service: 'svc',
      tags: { 'kuma.io/service': 'other', mesh: 'fake' },
      sni: 'svc{mesh=real}',
    },
    {
      title: 'upper case sorts before lower case',
      mesh: 'm',
      service: 's',
      tags: { Zeta: '1' },
      sni: 's{Zeta=1,mesh=m}',
    },
  ]
  for (const c of builds) {
    it(`sni - builds ${c.title}`, () => {
      expect(legacyTagSni.build({ mesh: c.mesh, service: c.service, tags: c.tags })).toBe(c.sni)
    })
  }

  it('sni - meshServiceSni is the default format', () => {
    expect(meshServiceSni('default', 'httpbin')).toBe('httpbin{mesh=default}')
  })

  it('sni - service alone has no braces (Kuma SNIFromTags)', () => {
    expect(sniFromTags({ 'kuma.io/service': 'web' })).toBe('web')
  })

  const parses: { sni: string; tags: Record<string, string> }[] = [
    { sni: 'web', tags: { 'kuma.io/service': 'web' } },
    { sni: 'orders{mesh=default}', tags: { 'kuma.io/service': 'orders', mesh: 'default' } },
    { sni: 'b{env=prod,mesh=m}', tags: { 'kuma.io/service': 'b', env: 'prod', mesh: 'm' } },
  ]
  for (const c of parses) {
    it(`sni - parses ${c.sni}`, () => {
      expect(tagsFromSni(c.sni)).toEqual(c.tags)
    })
  }

  const bad: { sni: string; reason: RegExp }[] = [
    { sni: 'a{b=c}{d=e}', reason: /more than one "\{"/ },
    { sni: 'a{b}', reason: /pair "b" needs exactly one "="/ },
    { sni: 'a{b=c=d}', reason: /pair "b=c=d"/ },
    { sni: 'a{mesh=m,}', reason: /pair ""/ },
  ]
  for (const c of bad) {
    it(`sni - rejects ${c.sni}`, () => {
      const err = (() => {
        try {
          tagsFromSni(c.sni)
        } catch (e) {
          return e
        }
      })()
      expect(err).toBeInstanceOf(SniParseError)
      expect((err as SniParseError).code).toBe('SniParseError')
      expect((err as Error).message).toMatch(c.reason)
    })
  }

  it('sni - legacy parse needs a mesh tag', () => {
    expect(() => legacyTagSni.parse('web')).toThrow(/no mesh tag/)
  })

  it('sni - build then parse is the identity for valid tag charsets (property)', () => {
    const token = fc.stringMatching(/^[a-zA-Z0-9._:-]{1,12}$/)
    const key = fc.stringMatching(/^[a-zA-Z0-9._/:-]{1,12}$/).filter((k) => k !== 'mesh' && k !== 'kuma.io/service')
    fc.assert(
      fc.property(token, token, fc.dictionary(key, token, { maxKeys: 4 }), (mesh, service, tags) => {
        const sni = legacyTagSni.build({ mesh, service, tags })
        const back = legacyTagSni.parse(sni)
        expect(back.mesh).toBe(mesh)
        expect(back.service).toBe(service)
        expect(back.tags ?? {}).toEqual(tags)
      }),
      { numRuns: 200 },
    )
  })
})
