/**
 * A bounded queue of messages sent one at a time, in order (the egress's rollout events). A send that fails
 * leaves its message first in the queue and is retried after `retryMs`, or at once on `flush()` (NATS is back);
 * past `max` queued messages the oldest is dropped. Nothing is sent while `canSend()` is false.
 */
export class OrderedSender<T> {
  private readonly queue: T[] = []
  private sending: Promise<void> | undefined
  private retry: NodeJS.Timeout | undefined
  private closed = false

  constructor(
    private readonly o: {
      send(item: T): Promise<unknown>
      canSend(): boolean
      max: number
      retryMs: number
      onError?(err: unknown, item: T, queued: number): void
      onDrop?(item: T): void
    },
  ) {}

  get length(): number {
    return this.queue.length
  }

  /** Queues `item` and sends what is queued; resolves when this round of sending ends. */
  push(item: T): Promise<void> {
    this.queue.push(item)
    if (this.queue.length > this.o.max) {
      const dropped = this.queue.shift() as T
      this.o.onDrop?.(dropped)
    }
    return this.flush()
  }

  /** Sends what is queued (a round already running takes new items too). */
  flush(): Promise<void> {
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined
      // An item queued after the round saw the queue empty, but before this ran, was given the finishing
      // promise: without this it would wait for the next item or reconnect.
      if (this.queue.length > 0 && this.retry === undefined && !this.closed && this.o.canSend()) void this.flush()
    })
    return this.sending
  }

  /** Stops retrying; what is queued is not sent. */
  close(): void {
    this.closed = true
    if (this.retry) clearTimeout(this.retry)
    this.retry = undefined
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.closed && this.o.canSend()) {
      const item = this.queue[0] as T
      try {
        await this.o.send(item)
        this.queue.shift()
      } catch (err) {
        this.o.onError?.(err, item, this.queue.length)
        this.retry ??= setTimeout(() => {
          this.retry = undefined
          void this.flush()
        }, this.o.retryMs).unref()
        return
      }
    }
  }
}
