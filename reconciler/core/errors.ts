/**
 * Errors of the reconciler. Every error has a stable `code`, a structured payload and an optional `cause`
 * (ErrorOptions); `toJSON()` gives the same shape on `/status`, in status events and in logs (STYLE.md §4).
 * Which codes stall and which retry is decided in conditions.ts, never here.
 */

/** Base class: `code` is stable, `toJSON()` is `{ code, message, ...payload, cause? }`. */
export class ReconcileError extends Error {
  readonly code: string = 'ReconcileError'

  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }

  /** Structured fields besides code and message (overridden by subclasses). */
  protected payload(): Record<string, unknown> {
    return {}
  }

  toJSON(): Record<string, unknown> {
    const cause = this.cause
    return {
      code: this.code,
      message: this.message,
      ...this.payload(),
      ...(cause === undefined
        ? {}
        : { cause: cause instanceof Error ? { name: cause.name, message: cause.message } : String(cause) }),
    }
  }
}

/**
 * A NATS write (KV table, event, status) failed for a reason that may go away: connection lost, timeout,
 * JetStream unavailable. Transient: retry with backoff; the last good tables keep serving.
 */
export class PublishFailed extends ReconcileError {
  override readonly code = 'PublishFailed'

  constructor(
    readonly target: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`publish to ${target} failed: ${message}`, options)
  }

  protected override payload(): Record<string, unknown> {
    return { target: this.target }
  }
}

/**
 * A CAS write to KV `zonegate-tables` was refused ("wrong last sequence"): someone else wrote the key since
 * `expectedRevision` was read (another reconciler, or a stale inventory). Retry after re-reading the
 * inventory; never overwrite blindly.
 */
export class PublishConflict extends ReconcileError {
  override readonly code = 'PublishConflict'

  constructor(
    readonly key: string,
    readonly expectedRevision: number,
    options?: ErrorOptions,
  ) {
    super(`${key}: expected KV revision ${expectedRevision} but the key was written by someone else`, options)
  }

  protected override payload(): Record<string, unknown> {
    return { key: this.key, expectedRevision: this.expectedRevision }
  }
}
