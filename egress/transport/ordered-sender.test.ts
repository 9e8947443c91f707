import { describe, expect, it, vi } from 'vitest'
import { OrderedSender } from './ordered-sender.js'

/** A send whose calls wait until the test settles them. */
function controlled() {
  const calls: { item: string; ok(): void; fail(): void; done: Promise<unknown> }[] = []
  const send = (item: string) => {
    let ok!: () => void
    let fail!: () => void
    const done = new Promise<void>((res, rej) => {
      ok = res
      fail = () => rej(new Error('timeout'))
    })
    calls.push({ item, ok, fail, done })
    return done
  }
  return { calls, send }
}

const settle = () => new Promise((r) => setTimeout(r, 0))

describe('ordered sender', () => {
  it('ordered sender - an item queued while the round is ending is still sent (it used to wait for the next item)', async () => {
    const c = controlled()
    const s = new OrderedSender<string>({ send: c.send, canSend: () => true, max: 10, retryMs: 1000 })
    void s.push('A')
    expect(c.calls.map((x) => x.item)).toEqual(['A'])
    // queued right after A is stored: after the round's loop has resumed and seen an empty queue, before it ends
    void c.calls[0]!.done.then(() => s.push('B'))
    c.calls[0]!.ok()
    await settle()
    expect(c.calls.map((x) => x.item)).toEqual(['A', 'B'])
    c.calls[1]!.ok()
    await settle()
    expect(s.length).toBe(0)
  })

  it('ordered sender - in order, one at a time; a failure keeps the item first and retries it after retryMs', async () => {
    vi.useFakeTimers()
    try {
      const c = controlled()
      const errors: string[] = []
      const s = new OrderedSender<string>({
        send: c.send,
        canSend: () => true,
        max: 10,
        retryMs: 1000,
        onError: (_e, item) => errors.push(item),
      })
      void s.push('A')
      void s.push('B')
      expect(c.calls.map((x) => x.item)).toEqual(['A']) // B waits for A
      c.calls[0]!.fail()
      await vi.advanceTimersByTimeAsync(0)
      expect(errors).toEqual(['A'])
      expect(s.length).toBe(2)
      await vi.advanceTimersByTimeAsync(999)
      expect(c.calls).toHaveLength(1)
      await vi.advanceTimersByTimeAsync(1)
      expect(c.calls.map((x) => x.item)).toEqual(['A', 'A'])
      c.calls[1]!.ok()
      await vi.advanceTimersByTimeAsync(0)
      c.calls[2]!.ok()
      await vi.advanceTimersByTimeAsync(0)
      expect(c.calls.map((x) => x.item)).toEqual(['A', 'A', 'B'])
      expect(s.length).toBe(0)
      s.close()
    } finally {
      vi.useRealTimers()
    }
  })

  it('ordered sender - holds at most max items (the oldest dropped) and sends nothing while it cannot', async () => {
    const c = controlled()
    let up = false
    const dropped: string[] = []
    const s = new OrderedSender<string>({
      send: c.send,
      canSend: () => up,
      max: 2,
      retryMs: 1000,
      onDrop: (i) => dropped.push(i),
    })
    for (const i of ['A', 'B', 'C']) void s.push(i)
    expect(c.calls).toHaveLength(0)
    expect(dropped).toEqual(['A'])
    up = true
    void s.flush()
    await settle()
    c.calls[0]!.ok()
    await settle()
    c.calls[1]!.ok()
    await settle()
    expect(c.calls.map((x) => x.item)).toEqual(['B', 'C'])
  })
})
