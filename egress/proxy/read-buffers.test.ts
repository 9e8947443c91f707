import { describe, expect, it } from 'vitest'
import { READ_BUFFER_BYTES } from './proxy-options.js'
import { READ_BUFFERS_PER_SLAB, ReadBufferPool } from './read-buffers.js'

describe('read buffer pool', () => {
  it('read buffer pool - buffers of one slab are distinct, adjacent and of the read size; the next slab starts after perSlab', () => {
    const pool = new ReadBufferPool()
    const bufs = Array.from({ length: READ_BUFFERS_PER_SLAB + 1 }, () => pool.take())
    for (const b of bufs) expect(b.length).toBe(READ_BUFFER_BYTES)
    const slab = bufs[0]!.buffer
    expect(slab.byteLength).toBe(READ_BUFFER_BYTES * READ_BUFFERS_PER_SLAB)
    for (let i = 0; i < READ_BUFFERS_PER_SLAB; i++) {
      expect(bufs[i]!.buffer).toBe(slab)
      expect(bufs[i]!.byteOffset - bufs[0]!.byteOffset).toBe(i * READ_BUFFER_BYTES)
    }
    expect(bufs[READ_BUFFERS_PER_SLAB]!.buffer).not.toBe(slab)
    // writing one does not touch its neighbours
    bufs[1]!.fill(7)
    bufs[0]!.fill(1)
    bufs[2]!.fill(2)
    expect(bufs[1]!.every((x) => x === 7)).toBe(true)
  })

  it('read buffer pool - given-back buffers are reused last in, first out, and at most maxFree are kept', () => {
    const pool = new ReadBufferPool(16, 4, 2)
    const [a, b, c] = [pool.take(), pool.take(), pool.take()]
    pool.give(a!)
    pool.give(b!)
    pool.give(c!) // over maxFree: dropped
    expect(pool.idle).toBe(2)
    expect(pool.take()).toBe(b)
    expect(pool.take()).toBe(a)
    const fresh = pool.take()
    expect(fresh).not.toBe(c)
    expect(fresh.byteOffset - a!.byteOffset).toBe(3 * 16) // the fourth buffer of the first slab
  })
})
