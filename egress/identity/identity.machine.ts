import { assign, fromPromise, setup } from 'xstate'
import { renewDelayMs, retryDelayMs } from '../core/mesh-mtls.js'
import type { MeshCert } from './egress-key.js'

/**
 * The identity of one mesh in one egress (one actor per mesh of the served table). It names its effects and
 * egress-identity.ts provides them:
 * - `requestCert` sends a CSR for the mesh (NATS request/reply to the reconciler) and resolves with the
 *   checked certificate;
 * - `installCert` swaps the secure context used for new handshakes (open connections keep theirs) and
 *   saves the certificate to `--state-dir`.
 * A saved certificate that is still fresh is used at once (`valid`); the certificate is renewed at ~2/3 of
 * its lifetime (with jitter); a failed request is retried with capped exponential backoff and jitter, for as
 * long as the mesh is served, while the current certificate (if any) keeps serving. `renew` asks for a new
 * certificate now (e.g. NATS came back while backing off).
 *
 * States: checking → (valid | requesting) ; requesting → valid | backoff ; backoff → requesting ;
 * valid → requesting (renewal) ; any → stopped on `stop`.
 */

export interface IdentityContext {
  mesh: string
  cert?: MeshCert
  /** Failed requests since the last success. */
  attempt: number
  lastError?: string
  /** When the next renewal is due (ms since epoch), while `valid`. */
  renewAt?: number
  /** This actor's jitter in [0, 1) (drawn once, so the reported `renewAt` is when it really renews). */
  jitter: number
}

export type IdentityEvent = { type: 'renew' } | { type: 'stop' }

export interface IdentityInput {
  mesh: string
  cert?: MeshCert
  /** In [0, 1); default Math.random(). */
  jitter?: number
}

const missing = (name: string) =>
  fromPromise<never, unknown>(async () => {
    throw new Error(`${name} not provided`)
  })

/** Whether the certificate may serve without renewing first. Pure but for `now`. */
export function isFresh(cert: MeshCert | undefined, now: number): boolean {
  return cert !== undefined && cert.notAfter > now && renewDelayMs(cert.notBefore, cert.notAfter, now, 0.5) > 0
}

/** Milliseconds until the context's certificate is due for renewal (0 without one). Pure but for `now`. */
export function renewDelayOf(context: Pick<IdentityContext, 'cert' | 'jitter'>, now: number): number {
  return context.cert ? renewDelayMs(context.cert.notBefore, context.cert.notAfter, now, context.jitter) : 0
}

export const identityMachine = setup({
  types: {} as { context: IdentityContext; events: IdentityEvent; input: IdentityInput },
  actors: {
    requestCert: missing('requestCert') as ReturnType<typeof fromPromise<MeshCert, { mesh: string }>>,
  },
  actions: {
    /** Called with each newly issued certificate (the saved one at start is installed by the owner). */
    installCert: (_, _cert: MeshCert) => {},
  },
  guards: {
    fresh: ({ context }) => isFresh(context.cert, Date.now()),
  },
  delays: {
    renew: ({ context }) => renewDelayOf(context, Date.now()),
    retry: ({ context }) => retryDelayMs(context.attempt, Math.random()),
  },
}).createMachine({
  id: 'identity',
  initial: 'checking',
  context: ({ input }) => ({
    mesh: input.mesh,
    attempt: 0,
    jitter: input.jitter ?? Math.random(),
    ...(input.cert ? { cert: input.cert } : {}),
  }),
  on: { stop: { target: '.stopped' } },
  states: {
    checking: {
      always: [{ guard: 'fresh', target: 'valid' }, { target: 'requesting' }],
    },
    requesting: {
      invoke: {
        src: 'requestCert',
        input: ({ context }) => ({ mesh: context.mesh }),
        onDone: {
          target: 'valid',
          actions: [
            assign({ cert: ({ event }) => event.output, attempt: 0, lastError: undefined }),
            { type: 'installCert', params: ({ event }) => event.output },
          ],
        },
        onError: {
          target: 'backoff',
          actions: assign({
            attempt: ({ context }) => context.attempt + 1,
            lastError: ({ event }) => (event.error instanceof Error ? event.error.message : String(event.error)),
          }),
        },
      },
    },
    backoff: {
      after: { retry: { target: 'requesting' } },
      on: { renew: { target: 'requesting' } },
    },
    valid: {
      entry: assign({ renewAt: ({ context }) => Date.now() + renewDelayOf(context, Date.now()) }),
      after: { renew: { target: 'requesting' } },
      on: { renew: { target: 'requesting' } },
    },
    stopped: { type: 'final' },
  },
})
