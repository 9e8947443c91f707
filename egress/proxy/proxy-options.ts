import { CLOSE_LINGER_MS } from './connection.js'
import { DEFAULT_DNS_TTL_MS } from './dns-cache.js'

/** The TcpProxy's tunables, hooks and wire constants. */

export interface ProxyOptions {
  /** Deadline for the whole ClientHello to arrive (slowloris cut-off). Default 5 s. */
  helloTimeoutMs: number
  /** Per-attempt upstream connect timeout. Default 3 s. */
  connectTimeoutMs: number
  /** A relayed connection with no traffic either way for this long is closed. Default 1 h (as Envoy). */
  idleTimeoutMs: number
  /** Accepted connections beyond this are closed at once (`over-capacity`). Default 10000. */
  maxConnections: number
  /** Connections of a route removed by a swap are closed after this. Default 30 s. */
  drainPeriodMs: number
  /** After a refusal alert or one side's close, how long the other side may take to flush and close. Default 2 s. */
  closeLingerMs: number
  /** How long an upstream host name's addresses are kept (proxy/dns-cache.ts); 0: looked up per connection. Default 10 s. */
  dnsTtlMs: number
  /**
   * `lean`: passthrough connections relayed on libuv handles without net.Socket (proxy/lean.ts), falling back to
   * `net` when this Node lacks the bindings; `net`: every connection on net.Socket. Default `lean`.
   */
  dataPath: 'lean' | 'net'
}

export const DEFAULT_PROXY_OPTIONS: ProxyOptions = {
  helloTimeoutMs: 5000,
  connectTimeoutMs: 3000,
  idleTimeoutMs: 3_600_000,
  maxConnections: 10_000,
  drainPeriodMs: 30_000,
  closeLingerMs: CLOSE_LINGER_MS,
  dnsTtlMs: DEFAULT_DNS_TTL_MS,
  dataPath: 'lean',
}

/** On shutdown, how long open connections may take to finish before they are closed (`--grace`). */
export const DEFAULT_GRACE_MS = 30_000

export interface ProxyHooks {
  /** Seconds from accept to a decision on the ClientHello (routed or refused). */
  helloRead?(seconds: number): void
}

/**
 * Size of an upstream read buffer, held by each connection for its lifetime (HAProxy's default bufsize is
 * 16 KiB per buffer too); at most MAX_POOLED_READ_BUFFERS idle ones are kept for reuse.
 */
export const READ_BUFFER_BYTES = 16 * 1024
export const MAX_POOLED_READ_BUFFERS = 1024

/** TLS alert record: fatal (2), unrecognized_name (112). */
export const UNRECOGNIZED_NAME_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70])
