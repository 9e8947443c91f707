import { JetStreamApiError } from '@nats-io/jetstream'
import { jserrors } from '@nats-io/jetstream/internal'
import { describe, expect, it } from 'vitest'
import { PublishFailed } from '../core/errors.js'
import { isCasMismatch, isLayoutMissing, isStreamNotFound } from './nats-errors.js'

const api = (err_code: number, description: string) => new JetStreamApiError({ code: 400, err_code, description })

describe('nats-errors', () => {
  it.each([
    ['wrong last sequence', api(10071, 'wrong last sequence: 3'), [true, false, false]],
    ['wrong last sequence (unknown)', api(10164, 'wrong last sequence: unknown'), [true, false, false]],
    ['stream not found', api(10059, 'stream not found'), [false, true, true]],
    ['no message found', api(10037, 'no message found'), [false, false, false]],
    ['no responders', new jserrors.JetStreamNotEnabled('jetstream is not enabled'), [false, false, true]],
    ['the same text without a code', new Error('stream not found: wrong last sequence'), [false, false, false]],
    [
      'a wrapped stream not found',
      new PublishFailed('x', 'y', { cause: api(10059, 'stream not found') }),
      [false, true, true],
    ],
  ] as const)('nats-errors - %s', (_name, err, [cas, stream, layout]) => {
    expect([isCasMismatch(err), isStreamNotFound(err), isLayoutMissing(err)]).toEqual([cas, stream, layout])
  })
})
