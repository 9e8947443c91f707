import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream'
// the client's typed errors: JetStreamNotEnabled is only exported from the package's `internal` entry
import { jserrors } from '@nats-io/jetstream/internal'

/**
 * What a NATS failure was, read from the client's typed errors (JetStream API error codes and error classes),
 * never from message text: the server's wording is not a contract. Each check also looks through `cause` (our
 * errors, e.g. PublishFailed, wrap the client's), a few levels deep.
 */

function anyCause(err: unknown, test: (e: unknown) => boolean): boolean {
  let e: unknown = err
  for (let depth = 0; depth < 5 && e !== undefined && e !== null; depth++) {
    if (test(e)) return true
    const next: unknown = e instanceof Error ? e.cause : undefined
    if (next === e) return false
    e = next
  }
  return false
}

const hasApiCode =
  (...codes: number[]) =>
  (e: unknown): boolean =>
    e instanceof JetStreamApiError && codes.includes(e.code)

/** A CAS write was refused: the key exists (create) or was written since (update). API codes 10071, 10164. */
export function isCasMismatch(err: unknown): boolean {
  return anyCause(
    err,
    hasApiCode(JetStreamApiCodes.StreamWrongLastSequence, JetStreamApiCodes.StreamWrongLastSequenceUnknown),
  )
}

/** The stream (a KV bucket or object store is one) does not exist. API code 10059. */
export function isStreamNotFound(err: unknown): boolean {
  return anyCause(err, hasApiCode(JetStreamApiCodes.StreamNotFound))
}

/**
 * zonegate's layout is gone from the server (a wiped or replaced store): the stream does not exist, or a
 * JetStream publish found no stream listening on its subject (the client's JetStreamNotEnabled, raised on
 * "no responders").
 */
export function isLayoutMissing(err: unknown): boolean {
  return anyCause(
    err,
    (e) => hasApiCode(JetStreamApiCodes.StreamNotFound)(e) || e instanceof jserrors.JetStreamNotEnabled,
  )
}
