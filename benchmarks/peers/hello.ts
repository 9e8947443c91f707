/**
 * Canned TLS ClientHello records for the `connraw` workload and the rejection checks: a plausible TLS 1.3
 * ClientHello (supported_versions, supported_groups, signature_algorithms, key_share x25519) with or without a
 * server_name extension. Nobody completes a handshake with it; peers only read the SNI. Pure.
 */
function u16(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

function u24(n: number): Buffer {
  return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff])
}

function ext(type: number, body: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(body.length), body])
}

/** The ClientHello record (content type 22) naming `sni`, or with no server_name extension when `sni` is undefined. */
export function clientHello(sni?: string): Buffer {
  const exts: Buffer[] = []
  if (sni !== undefined) {
    const name = Buffer.from(sni, 'ascii')
    const entry = Buffer.concat([Buffer.from([0]), u16(name.length), name])
    exts.push(ext(0x0000, Buffer.concat([u16(entry.length), entry])))
  }
  exts.push(ext(0x000a, Buffer.concat([u16(4), u16(0x001d), u16(0x0017)]))) // supported_groups: x25519, P-256
  const sigs = [0x0403, 0x0804, 0x0401]
  exts.push(ext(0x000d, Buffer.concat([u16(sigs.length * 2), ...sigs.map(u16)]))) // signature_algorithms
  exts.push(ext(0x002b, Buffer.from([2, 0x03, 0x04]))) // supported_versions: TLS 1.3
  const share = Buffer.concat([u16(0x001d), u16(32), Buffer.alloc(32, 0x42)])
  exts.push(ext(0x0033, Buffer.concat([u16(share.length), share]))) // key_share
  const extensions = Buffer.concat(exts)
  const suites = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f]
  const body = Buffer.concat([
    u16(0x0303), // legacy_version TLS 1.2
    Buffer.alloc(32, 0x11), // random
    Buffer.from([32]),
    Buffer.alloc(32, 0x22), // legacy_session_id
    u16(suites.length * 2),
    ...suites.map(u16),
    Buffer.from([1, 0]), // compression: null
    u16(extensions.length),
    extensions,
  ])
  const handshake = Buffer.concat([Buffer.from([1]), u24(body.length), body])
  return Buffer.concat([Buffer.from([22, 0x03, 0x01]), u16(handshake.length), handshake])
}

/** Plain HTTP request bytes, for the "non-TLS bytes" rejection check. */
export const PLAIN_HTTP = Buffer.from('GET /small HTTP/1.1\r\nHost: a.test\r\n\r\n', 'ascii')
