/**
 * Builds ClientHello bytes for tests, benchmarks and probes: a TLS 1.3-style ClientHello with the given
 * server names and extra extensions, wrapped in records of a chosen size. Pure.
 */

/** Builds a ClientHello handshake message (4-byte header included). Pure. */
export function buildHello(opts: { sni?: string[]; exts?: [number, Buffer][]; noExtensions?: boolean } = {}): Buffer {
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff])
  const exts: Buffer[] = []
  if (opts.sni !== undefined) {
    const names = opts.sni.map((s) => {
      const b = Buffer.from(s, 'latin1')
      return Buffer.concat([Buffer.from([0]), u16(b.length), b])
    })
    const list = Buffer.concat(names)
    const body = Buffer.concat([u16(list.length), list])
    exts.push(Buffer.concat([u16(0), u16(body.length), body]))
  }
  for (const [type, data] of opts.exts ?? []) exts.push(Buffer.concat([u16(type), u16(data.length), data]))
  const extBlock = Buffer.concat(exts)
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7), // random
    Buffer.from([32]),
    Buffer.alloc(32, 9), // session id
    u16(4),
    Buffer.from([0x13, 0x01, 0x13, 0x02]),
    Buffer.from([1, 0]),
    opts.noExtensions ? Buffer.alloc(0) : Buffer.concat([u16(extBlock.length), extBlock]),
  ])
  return Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body])
}

/** Wraps a handshake message into TLS 1.0-versioned handshake records of at most `fragment` bytes. Pure. */
export function toRecords(hs: Buffer, fragment = 16384): Buffer {
  const parts: Buffer[] = []
  for (let off = 0; off < hs.length; off += fragment) {
    const chunk = hs.subarray(off, off + fragment)
    parts.push(Buffer.from([22, 3, 1, chunk.length >> 8, chunk.length & 0xff]), chunk)
  }
  return Buffer.concat(parts)
}
