import { MAX_POOLED_READ_BUFFERS, READ_BUFFER_BYTES } from './proxy-options.js'

/** Read buffers per slab: 64 × 16 KiB = 1 MiB. */
export const READ_BUFFERS_PER_SLAB = 64

/**
 * The upstream read buffers of one proxy (docs/decisions/006-egress-relay-buffers-and-deadline-sweep.md), cut out of
 * slabs of `perSlab` buffers instead of allocated one by one. A 16 KiB `Buffer.allocUnsafeSlow` is a malloc whose
 * bookkeeping writes make about 5 KB of it resident at once, before any byte is read into it: the largest part of
 * an idle relayed connection's memory. A slab is one uninitialised allocation (`allocUnsafeSlow`, no zero fill)
 * whose pages become resident only as data is read into them, so an idle connection's buffer costs its Buffer
 * object (~0.7 KB per buffer measured, against ~4.9 KB). Buffers given back are reused last-in first-out (the ones
 * already resident first); at most `maxFree` are kept, the others are dropped, and a slab is freed by the GC once
 * none of its buffers is referenced. A buffer's `.buffer` is its slab's: nothing may transfer or detach it.
 */
export class ReadBufferPool {
  private readonly free: Buffer[] = []
  private slab: Buffer | undefined
  private next = 0

  constructor(
    readonly size = READ_BUFFER_BYTES,
    readonly perSlab = READ_BUFFERS_PER_SLAB,
    readonly maxFree = MAX_POOLED_READ_BUFFERS,
  ) {}

  /** A buffer of `size` bytes (its contents are whatever the memory held: read into it before reading it). */
  take(): Buffer {
    const reused = this.free.pop()
    if (reused !== undefined) return reused
    if (this.slab === undefined || this.next === this.perSlab) {
      this.slab = Buffer.allocUnsafeSlow(this.size * this.perSlab)
      this.next = 0
    }
    const at = this.next++ * this.size
    return this.slab.subarray(at, at + this.size)
  }

  /** Gives back a buffer nothing reads or writes any more. */
  give(b: Buffer): void {
    if (this.free.length < this.maxFree) this.free.push(b)
  }

  /** Buffers kept for reuse. */
  get idle(): number {
    return this.free.length
  }
}
