import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLogger } from './logging.js'

/** A destination that keeps what is written. */
function sink() {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean))
      cb()
    },
  })
  return { lines, stream, write: (s: string) => stream.write(s) }
}

describe('logging', () => {
  it('logging - json: ISO time, level names, no duplicate keys (last value wins), errors under err', () => {
    const out = sink()
    const log = createLogger({ name: 'egress', format: 'json', level: 'debug', destination: out, env: {} })
    log.child({ component: 'egress', zone: 'zone-a' }).child({ component: 'proxy' }).info({ zone: 'zone-b' }, 'hello')
    log.error({ err: new Error('boom') }, 'failed')
    log.trace('not shown')
    expect(out.lines).toHaveLength(2)
    const first = out.lines[0] as string
    expect(first.match(/"component"/g)).toHaveLength(1)
    expect(first.match(/"zone"/g)).toHaveLength(1)
    const o = JSON.parse(first) as Record<string, unknown>
    expect(o).toMatchObject({ level: 'info', name: 'egress', component: 'proxy', zone: 'zone-b', msg: 'hello' })
    expect(o.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(JSON.parse(out.lines[1] as string)).toMatchObject({
      level: 'error',
      err: { type: 'Error', message: 'boom' },
    })
  })

  it('logging - LOG_LEVEL and LOG_FORMAT from the environment; pretty is one readable line per entry', () => {
    const out = sink()
    const log = createLogger({
      name: 'reconciler',
      destination: out.stream,
      env: { LOG_LEVEL: 'warn', LOG_FORMAT: 'pretty' },
    })
    log.info('hidden')
    log.warn({ zone: 'zone-a' }, 'zone published')
    expect(out.lines).toHaveLength(1)
    expect(out.lines[0]).toMatch(/WARN.*\(reconciler\).*zone published.*"zone":"zone-a"/)
    expect(() => JSON.parse(out.lines[0] as string)).toThrow()
  })

  it.each(['json', 'pretty'] as const)(
    'logging - %s: credentials, secrets and private keys are redacted at any of three levels',
    (format) => {
      const out = sink()
      const log = createLogger({ name: 'reconciler', format, destination: out.stream, env: {} })
      const secrets = {
        password: 'pw-1',
        token: 'tok-2',
        seed: 'SUAK-3',
        creds: '-----BEGIN NATS USER JWT----- 4',
        webhookSecret: 'hook-5',
        req: { headers: { authorization: 'Bearer 6', cookie: 'c=7' } },
        upstream: { tls: { clientKey: '-----BEGIN PRIVATE KEY----- 8' } },
        signingKey: 'SA-9',
        jwt: 'eyJ-10',
      }
      log.child({ component: 'git-source' }).info({ ...secrets, publicKey: 'APUBLIC', zone: 'zone-a' }, 'hello')
      const text = out.lines.join('\n')
      for (const v of [
        'pw-1',
        'tok-2',
        'SUAK-3',
        'JWT----- 4',
        'hook-5',
        'Bearer 6',
        'c=7',
        'KEY----- 8',
        'SA-9',
        'eyJ-10',
      ])
        expect(text).not.toContain(v)
      expect(text).toContain('[Redacted]')
      expect(text).toContain('APUBLIC')
      expect(text).toContain('zone-a')
    },
  )
})
