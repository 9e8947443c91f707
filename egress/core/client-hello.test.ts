import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ClientHelloReader,
  type HelloResult,
  MAX_HANDSHAKE_BYTES,
  MAX_RAW_BYTES,
  NEED_MORE,
  parseClientHello,
} from './client-hello.js'
import { buildHello, toRecords } from './hello-builder.js'

const refused = (reason: string, tls: boolean) => ({ ok: false, reason, tls })
const found = (serverName: string) => ({ ok: true, serverName })
const withLen = (hs: Buffer, len: number) =>
  Buffer.concat([Buffer.from([1, len >> 16, (len >> 8) & 0xff, len & 0xff]), hs.subarray(4)])

describe('client-hello', () => {
  const cases: [string, Buffer, HelloResult | object][] = [
    ['one record with SNI', toRecords(buildHello({ sni: ['orders{mesh=default}'] })), found('orders{mesh=default}')],
    ['case is kept as sent', toRecords(buildHello({ sni: ['A.Test'] })), found('A.Test')],
    [
      'SNI after other extensions',
      toRecords(buildHello({ exts: [[43, Buffer.from([2, 3, 4])]], sni: ['x'] })),
      found('x'),
    ],
    ['records of 1 byte', toRecords(buildHello({ sni: ['frag.test'] }), 1), found('frag.test')],
    ['records of 3 bytes', toRecords(buildHello({ sni: ['frag.test'] }), 3), found('frag.test')],
    ['records of 100 bytes', toRecords(buildHello({ sni: ['frag.test'] }), 100), found('frag.test')],
    [
      'trailing bytes are ignored',
      Buffer.concat([toRecords(buildHello({ sni: ['t'] })), Buffer.from('xyz')]),
      found('t'),
    ],
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), refused('not-tls', false)],
    ['SSH banner', Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), refused('not-tls', false)],
    ['SSLv2 hello', Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15]), refused('sslv2', false)],
    ['record version 2.x', Buffer.from([22, 2, 0, 0, 5, 1]), refused('not-tls', false)],
    ['not a ClientHello', Buffer.from([22, 3, 3, 0, 4, 2, 0, 0, 0]), refused('not-client-hello', true)],
    ['no extensions', toRecords(buildHello({ noExtensions: true })), refused('no-sni', true)],
    [
      'extensions without SNI',
      toRecords(buildHello({ exts: [[43, Buffer.from([2, 3, 4])]] })),
      refused('no-sni', true),
    ],
    ['empty record', Buffer.from([22, 3, 1, 0, 0, 1]), refused('malformed', true)],
    ['record over 2^14', Buffer.from([22, 3, 1, 0x40, 0x01, 1]), refused('malformed', true)],
    ['handshake over 16 KiB', Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0, 0x40, 0x00]), refused('too-large', true)],
    [
      'duplicate SNI extension',
      toRecords(buildHello({ sni: ['a'], exts: [[0, Buffer.from([0, 4, 0, 0, 1, 98])]] })),
      refused('malformed', true),
    ],
    ['space in host name', toRecords(buildHello({ sni: ['a b'] })), refused('malformed', true)],
    ['non-ASCII host name', toRecords(buildHello({ sni: ['caf\u00e9'] })), refused('malformed', true)],
    ['empty host name', toRecords(buildHello({ sni: [''] })), refused('malformed', true)],
    [
      'handshake length shorter than body',
      toRecords(withLen(buildHello({ sni: ['a'] }), 40)),
      refused('malformed', true),
    ],
  ]
  it.each(cases)('client-hello - %s', (_name, bytes, expected) => {
    expect(parseClientHello(bytes)).toEqual(expected)
  })

  const prefixes: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['record type only', Buffer.from([22])],
    ['partial record header', Buffer.from([22, 3, 1, 1])],
    [
      'lying handshake length, bytes not there yet',
      toRecords(withLen(buildHello({ sni: ['a'] }), 9000), 16384).subarray(0, 200),
    ],
  ]
  it.each(prefixes)('client-hello - %s needs more bytes', (_name, bytes) => {
    expect(parseClientHello(bytes)).toBe(NEED_MORE)
  })

  it('client-hello - a record whose header claims more bytes than arrived is not decided before the whole record', () => {
    const hs = buildHello({ sni: ['claim.test'] })
    // one record claiming 10 bytes more than the hello (the rest would be another handshake message)
    const header = Buffer.from([22, 3, 1, (hs.length + 10) >> 8, (hs.length + 10) & 0xff])
    const partial = Buffer.concat([header, hs])
    expect(parseClientHello(partial)).toBe(NEED_MORE)
    expect(parseClientHello(Buffer.concat([partial, Buffer.alloc(9)]))).toBe(NEED_MORE)
    expect(parseClientHello(Buffer.concat([partial, Buffer.alloc(10)]))).toEqual(found('claim.test'))
    // fragmented: the record carrying the hello's last byte claims more than arrived
    const recs = toRecords(hs.subarray(0, 60), 60)
    const rest = hs.subarray(60)
    const last = Buffer.concat([Buffer.from([22, 3, 1, (rest.length + 5) >> 8, (rest.length + 5) & 0xff]), rest])
    expect(parseClientHello(Buffer.concat([recs, last]))).toBe(NEED_MORE)
    expect(parseClientHello(Buffer.concat([recs, last, Buffer.alloc(5)]))).toEqual(found('claim.test'))
  })

  it('client-hello - every proper prefix of a valid hello needs more bytes', () => {
    for (const fragment of [16384, 50, 7]) {
      const bytes = toRecords(buildHello({ sni: ['prefix.test'], exts: [[10, Buffer.alloc(300, 1)]] }), fragment)
      for (let i = 0; i < bytes.length; i++) expect(parseClientHello(bytes.subarray(0, i))).toBe(NEED_MORE)
      expect(parseClientHello(bytes)).toEqual(found('prefix.test'))
    }
  })

  it('client-hello - the reader fed byte by byte decides at the last byte and keeps every byte', () => {
    const bytes = toRecords(buildHello({ sni: ['slow.test'] }), 64)
    const reader = new ClientHelloReader()
    for (let i = 0; i < bytes.length - 1; i++) expect(reader.push(bytes.subarray(i, i + 1))).toBe(NEED_MORE)
    expect(reader.push(bytes.subarray(bytes.length - 1))).toEqual(found('slow.test'))
    expect(reader.peeked().equals(bytes)).toBe(true)
  })

  it('client-hello - a single decisive chunk is kept without a copy', () => {
    const bytes = toRecords(buildHello({ sni: ['fast.test'] }))
    const reader = new ClientHelloReader()
    expect(reader.push(bytes)).toEqual(found('fast.test'))
    expect(reader.peeked()).toBe(bytes)
  })

  it('client-hello - a hello at the 16 KiB limit is read, one byte more is too large', () => {
    const pad = (n: number) => buildHello({ sni: ['big.test'], exts: [[21, Buffer.alloc(n)]] })
    const base = pad(0).length
    const atLimit = pad(MAX_HANDSHAKE_BYTES - base)
    expect(atLimit.length).toBe(MAX_HANDSHAKE_BYTES)
    expect(parseClientHello(toRecords(atLimit))).toEqual(found('big.test'))
    expect(parseClientHello(toRecords(pad(MAX_HANDSHAKE_BYTES - base + 1)))).toEqual(refused('too-large', true))
  })

  it('client-hello - endless tiny records stop at the raw byte limit', () => {
    const hs = withLen(buildHello({ sni: ['a'] }), MAX_HANDSHAKE_BYTES - 4)
    const reader = new ClientHelloReader()
    const bytes = toRecords(Buffer.concat([hs, Buffer.alloc(MAX_HANDSHAKE_BYTES)]), 1)
    let r: HelloResult = NEED_MORE
    let off = 0
    while (r.ok === null && off < bytes.length) {
      r = reader.push(bytes.subarray(off, off + 4096))
      off += 4096
    }
    expect(r).toEqual(refused('too-large', true))
    expect(off).toBeLessThanOrEqual(MAX_RAW_BYTES + 4096)
  })
})

describe('client-hello properties', () => {
  const hello = fc
    .record({
      sni: fc.option(fc.stringMatching(/^[a-z0-9.{}=-]{1,40}$/), { nil: undefined }),
      pad: fc.nat({ max: 2000 }),
      fragment: fc.integer({ min: 1, max: 16384 }),
    })
    .map(({ sni, pad, fragment }) => ({
      sni,
      bytes: toRecords(
        buildHello({ sni: sni === undefined ? undefined : [sni], exts: [[21, Buffer.alloc(pad)]] }),
        fragment,
      ),
    }))

  const chunked = (bytes: Buffer, cuts: number[]) => {
    const reader = new ClientHelloReader()
    const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
    let prev = 0
    let r: HelloResult = NEED_MORE
    for (const p of [...points, bytes.length]) {
      if (p <= prev) continue
      r = reader.push(bytes.subarray(prev, p))
      prev = p
      if (r.ok !== null) break
      expect(reader.peeked().length).toBeLessThanOrEqual(MAX_RAW_BYTES)
    }
    return r
  }

  it('client-hello - valid hellos in any chunking give their SNI', () => {
    fc.assert(
      fc.property(hello, fc.array(fc.nat(), { maxLength: 8 }), ({ sni, bytes }, cuts) => {
        expect(chunked(bytes, cuts)).toEqual(sni === undefined ? refused('no-sni', true) : found(sni))
      }),
      { numRuns: 300 },
    )
  })

  it('client-hello - truncated hellos always need more bytes', () => {
    fc.assert(
      fc.property(hello, fc.nat(), ({ bytes }, cut) => {
        expect(parseClientHello(bytes.subarray(0, cut % bytes.length))).toBe(NEED_MORE)
      }),
      { numRuns: 300 },
    )
  })

  it('client-hello - mutated hellos never throw and chunking does not change the verdict', () => {
    fc.assert(
      fc.property(
        hello,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        ({ bytes }, flips, cuts) => {
          const m = Buffer.from(bytes)
          for (const [at, v] of flips) m[at % m.length] = v
          const whole = parseClientHello(m)
          expect([true, false, null]).toContain(whole.ok)
          expect(chunked(m, cuts)).toEqual(whole)
        },
      ),
      { numRuns: 500 },
    )
  })

  it('client-hello - random bytes never throw and decide within the raw limit', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (raw, asRecord) => {
        const bytes = asRecord ? Buffer.concat([Buffer.from([22, 3, 1]), Buffer.from(raw)]) : Buffer.from(raw)
        const started = performance.now()
        const r = parseClientHello(bytes)
        expect(performance.now() - started).toBeLessThan(50)
        if (r.ok === false) expect(typeof r.reason).toBe('string')
      }),
      { numRuns: 1000 },
    )
  })
})
