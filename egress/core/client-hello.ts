/**
 * Incremental TLS ClientHello reader: finds `server_name` in the first bytes a client sends, without
 * terminating TLS. Pure: no I/O, no clocks (the first-bytes deadline is the proxy's job).
 *
 * Hostile input is the normal case here, so the reader never throws and never allocates in proportion to a
 * length field it has not yet seen backed by received bytes:
 * - the handshake may be at most `MAX_HANDSHAKE_BYTES` (16 KiB) and the raw record bytes `MAX_RAW_BYTES`;
 * - a ClientHello in one chunk and one record (the common case) is parsed in place, with no copy at all;
 * - otherwise chunks are appended to one buffer that grows by doubling up to `MAX_RAW_BYTES`, and a handshake
 *   spread over several records is copied out once, when all of its bytes have arrived.
 */

/** Largest ClientHello handshake message accepted, header included. */
export const MAX_HANDSHAKE_BYTES = 16 * 1024
/** Largest number of raw bytes (records and their headers) buffered before giving up. */
export const MAX_RAW_BYTES = MAX_HANDSHAKE_BYTES + 1024
/** TLSPlaintext.length may not exceed 2^14. */
const MAX_RECORD_PAYLOAD = 16384
const RECORD_HEADER = 5
const CONTENT_HANDSHAKE = 22
const HANDSHAKE_CLIENT_HELLO = 1
const EXT_SERVER_NAME = 0
const NAME_TYPE_HOST = 0

export const HelloRefusal = {
  /** The first bytes are not a TLS handshake record (plain HTTP, SSH, garbage). */
  NotTls: 'not-tls',
  /** An SSLv2-format ClientHello: never routed. */
  SslV2: 'sslv2',
  /** A TLS handshake record whose first message is not a ClientHello. */
  NotClientHello: 'not-client-hello',
  /** A well-formed ClientHello without a host_name in server_name. */
  NoSni: 'no-sni',
  /** The handshake (or the records carrying it) exceeds the limits above. */
  TooLarge: 'too-large',
  /** Truncated vectors, lengths that overrun their container, bad host names. */
  Malformed: 'malformed',
} as const
export type HelloRefusal = (typeof HelloRefusal)[keyof typeof HelloRefusal]

/** The reader found the server name. */
export interface HelloFound {
  readonly ok: true
  /** The host_name exactly as sent (printable ASCII, 1..255 bytes); callers lower-case it for matching. */
  readonly serverName: string
}
/** The bytes will never give a routable ClientHello. `tls` is true when they were TLS records (send an alert). */
export interface HelloRefused {
  readonly ok: false
  readonly reason: HelloRefusal
  readonly tls: boolean
}
/** Not decided yet: feed more bytes. */
export interface HelloNeedMore {
  readonly ok: null
}
export type HelloResult = HelloFound | HelloRefused | HelloNeedMore

export const NEED_MORE: HelloNeedMore = Object.freeze({ ok: null })

const refusals = new Map<string, HelloRefused>()
function refuse(reason: HelloRefusal, tls: boolean): HelloRefused {
  const key = tls ? `${reason}:tls` : reason
  let r = refusals.get(key)
  if (r === undefined) {
    r = Object.freeze({ ok: false, reason, tls })
    refusals.set(key, r)
  }
  return r
}

const MALFORMED = refuse(HelloRefusal.Malformed, true)
const NO_SNI = refuse(HelloRefusal.NoSni, true)

/**
 * Decides on a contiguous buffer holding the first bytes of a connection (records and headers, as sent).
 * Returns `NEED_MORE` while the bytes are a valid prefix of a ClientHello within the limits — including while
 * the record that carries the hello's last byte is not complete, whatever its header claims —, a refusal as
 * soon as they cannot be one, else the server name. Bytes after that record are ignored. Pure; never throws.
 */
export function parseClientHello(buf: Uint8Array): HelloResult {
  const n = buf.length
  if (n === 0) return NEED_MORE
  const b0 = buf[0]!
  if (b0 !== CONTENT_HANDSHAKE) {
    // SSLv2 CLIENT-HELLO: 2-byte header with the high bit set, then msg_type 1.
    if (b0 & 0x80 && n >= 3 && buf[2] === 1) return refuse(HelloRefusal.SslV2, false)
    if (b0 & 0x80 && n < 3) return NEED_MORE
    return refuse(HelloRefusal.NotTls, false)
  }
  if (n < 3) return n === 2 && buf[1] !== 3 ? refuse(HelloRefusal.NotTls, false) : NEED_MORE
  if (buf[1] !== 3 || buf[2]! > 4) return refuse(HelloRefusal.NotTls, false)
  if (n < RECORD_HEADER) return NEED_MORE
  const len0 = (buf[3]! << 8) | buf[4]!
  if (len0 === 0 || len0 > MAX_RECORD_PAYLOAD) return refuse(HelloRefusal.Malformed, true)
  // Fast path: the whole handshake message lies inside the first record.
  if (len0 >= 4) {
    if (buf[5] !== undefined && buf[5] !== HANDSHAKE_CLIENT_HELLO) return refuse(HelloRefusal.NotClientHello, true)
    if (n < RECORD_HEADER + 4) return NEED_MORE
    const hsLen = (buf[6]! << 16) | (buf[7]! << 8) | buf[8]!
    if (hsLen + 4 > MAX_HANDSHAKE_BYTES) return refuse(HelloRefusal.TooLarge, true)
    if (hsLen + 4 <= len0) {
      // The whole record, not only the handshake message: a record whose header claims more bytes than have
      // arrived is never routed (the upstream would parse a different record than we did).
      if (n < RECORD_HEADER + len0) return NEED_MORE
      return parseHelloBody(buf, RECORD_HEADER + 4, RECORD_HEADER + 4 + hsLen)
    }
  }
  return gatherFragmented(buf)
}

/** Slow path: the handshake message spans several records. Copies it out once all bytes are there. */
function gatherFragmented(buf: Uint8Array): HelloResult {
  const n = buf.length
  let head = 0 // the 4-byte handshake header, big-endian, as far as received
  let need = -1 // handshake bytes needed, header included, once known
  let have = 0 // handshake bytes received so far
  let off = 0
  // First pass: validate record headers, learn the handshake length, count the handshake bytes received.
  while (off + RECORD_HEADER <= n) {
    if (buf[off] !== CONTENT_HANDSHAKE || buf[off + 1] !== 3 || buf[off + 2]! > 4) {
      return refuse(HelloRefusal.Malformed, true)
    }
    const len = (buf[off + 3]! << 8) | buf[off + 4]!
    if (len === 0 || len > MAX_RECORD_PAYLOAD) return refuse(HelloRefusal.Malformed, true)
    const start = off + RECORD_HEADER
    const avail = Math.min(len, n - start)
    for (let i = 0; i < avail && have + i < 4; i++) head = head * 256 + buf[start + i]!
    if (have === 0 && avail > 0 && buf[start] !== HANDSHAKE_CLIENT_HELLO) {
      return refuse(HelloRefusal.NotClientHello, true)
    }
    have += avail
    if (need < 0 && have >= 4) {
      need = 4 + (head & 0xffffff)
      if (need > MAX_HANDSHAKE_BYTES) return refuse(HelloRefusal.TooLarge, true)
    }
    if (need >= 0 && have >= need) {
      // the record holding the handshake's last byte must be complete too (see parseClientHello)
      if (avail < len) return n >= MAX_RAW_BYTES ? refuse(HelloRefusal.TooLarge, true) : NEED_MORE
      break
    }
    if (avail < len) break
    off = start + len
  }
  if (need < 0 || have < need) return n >= MAX_RAW_BYTES ? refuse(HelloRefusal.TooLarge, true) : NEED_MORE
  // Second pass: copy exactly `need` handshake bytes (bounded by MAX_HANDSHAKE_BYTES, all received).
  const hs = new Uint8Array(need)
  let got = 0
  off = 0
  while (got < need) {
    const len = (buf[off + 3]! << 8) | buf[off + 4]!
    const take = Math.min(len, need - got)
    hs.set(buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + take), got)
    got += take
    off += RECORD_HEADER + len
  }
  return parseHelloBody(hs, 4, need)
}

/**
 * Parses a ClientHello body `buf[start, end)` (after the 4-byte handshake header) and extracts the first
 * host_name of the server_name extension.
 */
function parseHelloBody(buf: Uint8Array, start: number, end: number): HelloResult {
  const malformed = MALFORMED
  let p = start + 2 + 32 // legacy_version, random
  if (p + 1 > end) return malformed
  p += 1 + buf[p]! // session_id
  if (p + 2 > end) return malformed
  const suites = (buf[p]! << 8) | buf[p + 1]!
  if (suites < 2 || suites & 1) return malformed
  p += 2 + suites
  if (p + 1 > end) return malformed
  const compressions = buf[p]!
  if (compressions < 1) return malformed
  p += 1 + compressions
  if (p > end) return malformed
  if (p === end) return NO_SNI // no extensions at all
  if (p + 2 > end) return malformed
  const extEnd = p + 2 + ((buf[p]! << 8) | buf[p + 1]!)
  if (extEnd !== end) return malformed
  p += 2
  let found: HelloResult | undefined
  while (p < extEnd) {
    if (p + 4 > extEnd) return malformed
    const type = (buf[p]! << 8) | buf[p + 1]!
    const len = (buf[p + 2]! << 8) | buf[p + 3]!
    p += 4
    if (p + len > extEnd) return malformed
    if (type === EXT_SERVER_NAME) {
      if (found !== undefined) return malformed // an extension type may appear once
      found = readServerName(buf, p, p + len)
      if (found.ok === false) return found
    }
    p += len
  }
  return found ?? NO_SNI
}

function readServerName(buf: Uint8Array, start: number, end: number): HelloResult {
  const malformed = MALFORMED
  if (start + 2 > end) return malformed
  const listEnd = start + 2 + ((buf[start]! << 8) | buf[start + 1]!)
  if (listEnd !== end) return malformed
  let p = start + 2
  while (p < listEnd) {
    if (p + 3 > listEnd) return malformed
    const type = buf[p]!
    const len = (buf[p + 1]! << 8) | buf[p + 2]!
    p += 3
    if (p + len > listEnd) return malformed
    if (type === NAME_TYPE_HOST) {
      if (len === 0 || len > 255) return malformed
      for (let i = p; i < p + len; i++) {
        const c = buf[i]!
        if (c < 0x21 || c > 0x7e) return malformed
      }
      return { ok: true, serverName: latin1(buf, p, p + len) }
    }
    p += len
  }
  return NO_SNI
}

function latin1(buf: Uint8Array, start: number, end: number): string {
  if (Buffer.isBuffer(buf)) return buf.toString('latin1', start, end)
  return String.fromCharCode.apply(null, buf.subarray(start, end) as unknown as number[])
}

/**
 * Accumulates the first bytes of one connection and decides on them. Feed every chunk to `push` until the
 * result is not `NEED_MORE`; `peeked()` then returns every byte received so far, unchanged, to forward
 * upstream. A first chunk that decides alone is never copied; later chunks go into one buffer that grows by
 * doubling and never beyond `MAX_RAW_BYTES`.
 */
export class ClientHelloReader {
  private first: Buffer | undefined
  private buf: Buffer | undefined
  private tail: Buffer | undefined
  private len = 0

  /** Adds a chunk and decides on everything received so far. Call again only after `NEED_MORE`. Never throws. */
  push(chunk: Buffer): HelloResult {
    if (this.len === 0) {
      this.first = chunk
      this.len = chunk.length
      if (this.len < MAX_RAW_BYTES) return parseClientHello(chunk)
      return undecidedIsTooLarge(parseClientHello(chunk.subarray(0, MAX_RAW_BYTES)), chunk)
    }
    // After NEED_MORE, len < MAX_RAW_BYTES: copy what fits, keep the rest aside for peeked().
    const room = MAX_RAW_BYTES - this.len
    const take = Math.min(room, chunk.length)
    if (this.buf === undefined || this.buf.length < this.len + take) {
      const next = Buffer.allocUnsafe(Math.min(MAX_RAW_BYTES, Math.max(this.len + take, 2 * this.len, 1024)))
      if (this.buf !== undefined) this.buf.copy(next, 0, 0, this.len)
      else this.first?.copy(next, 0)
      this.buf = next
      this.first = undefined
    }
    chunk.copy(this.buf, this.len, 0, take)
    this.len += take
    if (take < chunk.length) this.tail = chunk.subarray(take)
    const view = this.buf.subarray(0, this.len)
    return this.len < MAX_RAW_BYTES ? parseClientHello(view) : undecidedIsTooLarge(parseClientHello(view), view)
  }

  /** Every byte pushed so far, in order, as one buffer (no copy when a single chunk was pushed). */
  peeked(): Buffer {
    if (this.first !== undefined) return this.first
    if (this.buf === undefined) return Buffer.alloc(0)
    const view = this.buf.subarray(0, this.len)
    return this.tail === undefined ? view : Buffer.concat([view, this.tail])
  }
}

function undecidedIsTooLarge(r: HelloResult, bytes: Uint8Array): HelloResult {
  return r.ok === null ? refuse(HelloRefusal.TooLarge, bytes[0] === CONTENT_HANDSHAKE) : r
}
