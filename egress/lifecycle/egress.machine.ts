import { assign, enqueueActions, fromPromise, setup } from 'xstate'
import type { ZoneTable } from '../../schemas/table.js'
import {
  type Admission,
  admissionBase,
  admitTable,
  type EgressContext,
  type EgressInput,
  initialContext,
  loadFailure,
  rejectionOf,
  resyncOnRemoval,
  type TableRejected,
  type TableSource,
  type TableSwapped,
  withRejection,
  withSwap,
} from './egress-context.js'

/**
 * The egress lifecycle (docs/design.md §4). It names its effects and main.ts provides them:
 * - `loadTable` reads the table from the static source (file); resolves with the untrusted JSON value, or what the
 *   admission worker made of it (a `CompactZoneTable` or a `RejectedTable`); rejects when the file is unreadable;
 * - `start` applies the first table and opens the listener (and admin); resolves with where it listens;
 * - `applyTable` swaps the proxy's table (one reference assignment); resolves with the swap time in ms;
 * - `drain` stops accepting and waits for open connections up to the grace period;
 * - `connectBus` resolves at the first NATS connection (NATS mode).
 * Any source (file reload, the `--state-dir` file, a NATS watcher) hands tables in the same way: a
 * `table.received` event with the raw value. Invalid or not-newer tables are rejected and recorded; the
 * current table keeps serving. In NATS mode a table may arrive while still `connecting` (the saved table,
 * so an egress serves while NATS is down); `bus.lost` / `bus.restored` set `busLost` in any state, and
 * `serving` shows it as `degraded`; `table.removed` (the zone's key deleted, or the bucket recreated) lets
 * the next table in whatever its generation.
 *
 * States: boot → (loading | connecting → awaitingTable) → admitting → starting → serving ⇄ applying
 * (also serving → reloading → applying, serving ⇄ degraded) → draining → (stopped | drained → stopped).
 */

export type EgressEvent =
  | { type: 'table.received'; table: unknown; source: TableSource }
  | { type: 'reload' }
  | { type: 'drain'; exit: boolean }
  | { type: 'bus.lost' }
  | { type: 'bus.restored' }
  | { type: 'table.removed'; reason: string; generationsRestart?: boolean }

export interface StartOutput {
  /** Where the proxy listens (`host:port`). */
  listen: string
  /** Time to build and install the first table, in ms. */
  ms: number
}

const missing = (name: string) =>
  fromPromise<never, unknown>(async () => {
    throw new Error(`${name} not provided`)
  })

export const egressMachine = setup({
  types: {} as { context: EgressContext; events: EgressEvent; input: EgressInput },
  actors: {
    loadTable: missing('loadTable') as ReturnType<typeof fromPromise<unknown, void>>,
    start: missing('start') as ReturnType<typeof fromPromise<StartOutput, { table: ZoneTable }>>,
    applyTable: missing('applyTable') as ReturnType<typeof fromPromise<{ ms: number }, { table: ZoneTable }>>,
    drain: missing('drain') as ReturnType<typeof fromPromise<{ destroyed: number }, void>>,
    connectBus: missing('connectBus') as ReturnType<typeof fromPromise<void, void>>,
  },
  actions: {
    /** Called with every rejection (logging, metrics, and later a `rejected` rollout event). */
    reportRejected: (_, _params: TableRejected) => {},
    /** Called with every applied table (logging, metrics, and later an `applied` rollout event). */
    reportSwapped: (_, _params: TableSwapped) => {},
    recordRejection: enqueueActions(({ context, enqueue }) => {
      const rejected = rejectionOf(context.candidate)
      enqueue.assign(withRejection(context, rejected))
      // Named sibling actions are resolved at run time (so provide() overrides apply); setup() cannot type them here.
      enqueue({ type: 'reportRejected', params: rejected } as never)
    }),
    recordSwap: enqueueActions(({ context, event, enqueue }) => {
      const ms = (event as unknown as { output: { ms: number } }).output.ms
      const source = context.candidate?.source ?? 'file'
      const update = withSwap(context, acceptedTable(context.candidate), ms, source)
      enqueue.assign(update)
      enqueue({ type: 'reportSwapped', params: update.lastSwap! } as never)
    }),
    enqueue: assign({
      queued: ({ context, event }) =>
        event.type === 'table.received' ? { table: event.table, source: event.source } : context.queued,
    }),
    dequeue: assign(({ context }) => ({
      candidate: admitTable(
        admissionBase(context),
        context.queued?.table,
        context.queued?.source ?? 'file',
        context.zone,
        context.trustedKeys,
      ),
      queued: undefined,
    })),
  },
  guards: {
    isNatsSource: ({ context }) => context.source === 'nats',
    candidateAccepted: ({ context }) => context.candidate?.ok === true,
    hasQueued: ({ context }) => context.queued !== undefined,
    exitAfterDrain: ({ context }) => context.exitAfterDrain,
    busLost: ({ context }) => context.busLost,
    busUp: ({ context }) => !context.busLost,
  },
}).createMachine({
  id: 'egress',
  initial: 'boot',
  context: ({ input }) => initialContext(input),
  on: {
    'bus.lost': { actions: assign({ busLost: true }) },
    'bus.restored': { actions: assign({ busLost: false }) },
    'table.removed': { actions: assign({ resync: ({ context, event }) => resyncOnRemoval(context, event) }) },
  },
  states: {
    boot: {
      always: [{ guard: 'isNatsSource', target: 'connecting' }, { target: 'loading' }],
    },
    connecting: {
      invoke: {
        src: 'connectBus',
        onDone: { target: 'awaitingTable', actions: assign({ busLost: false }) },
        onError: { target: 'stopped', actions: assign({ error: ({ event }) => errorText(event.error) }) },
      },
      on: {
        // the `--state-dir` table: serve it while NATS is not (yet) there
        'table.received': { target: 'admitting', actions: assign({ candidate: admitEvent }) },
        drain: { target: 'stopped' },
      },
    },
    awaitingTable: {
      on: {
        'table.received': { target: 'admitting', actions: assign({ candidate: admitEvent }) },
        drain: { target: 'stopped' },
      },
    },
    loading: {
      invoke: {
        src: 'loadTable',
        onDone: {
          target: 'admitting',
          actions: assign({
            candidate: ({ context, event }) =>
              admitTable(undefined, event.output, 'file', context.zone, context.trustedKeys),
          }),
        },
        onError: {
          target: 'stopped',
          actions: [
            assign(({ context, event }) => ({ ...withRejection(context, loadFailure(event.error, 'file')) })),
            assign({ error: ({ event }) => `cannot load the table: ${errorText(event.error)}` }),
          ],
        },
      },
      on: { drain: { target: 'stopped' } },
    },
    admitting: {
      always: [
        { guard: 'candidateAccepted', target: 'starting' },
        { guard: 'isNatsSource', target: 'awaitingTable', actions: 'recordRejection' },
        {
          target: 'stopped',
          actions: [
            assign({ error: ({ context }) => `first table rejected: ${describe(rejectionOf(context.candidate))}` }),
            'recordRejection',
          ],
        },
      ],
    },
    starting: {
      invoke: {
        src: 'start',
        input: ({ context }) => ({ table: acceptedTable(context.candidate) }),
        onDone: { target: 'serving', actions: 'recordSwap' },
        onError: { target: 'stopped', actions: assign({ error: ({ event }) => errorText(event.error) }) },
      },
      on: {
        'table.received': { actions: 'enqueue' },
        drain: { target: 'stopped' },
      },
    },
    serving: {
      always: [
        { guard: 'hasQueued', target: 'applying', actions: 'dequeue' },
        { guard: 'busLost', target: 'degraded' },
      ],
      on: {
        'table.received': { target: 'applying', actions: assign({ candidate: admitEvent }) },
        reload: { target: 'reloading' },
        drain: { target: 'draining', actions: assign({ exitAfterDrain: ({ event }) => event.exit }) },
      },
    },
    degraded: {
      always: [
        { guard: 'hasQueued', target: 'applying', actions: 'dequeue' },
        { guard: 'busUp', target: 'serving' },
      ],
      on: {
        'table.received': { target: 'applying', actions: assign({ candidate: admitEvent }) },
        reload: { target: 'reloading' },
        drain: { target: 'draining', actions: assign({ exitAfterDrain: ({ event }) => event.exit }) },
      },
    },
    reloading: {
      invoke: {
        src: 'loadTable',
        onDone: {
          target: 'applying',
          actions: assign({
            candidate: ({ context, event }) =>
              admitTable(context.table, event.output, 'file', context.zone, context.trustedKeys),
          }),
        },
        onError: {
          target: 'serving',
          actions: [
            assign(({ context, event }) => withRejection(context, loadFailure(event.error, 'file'))),
            { type: 'reportRejected', params: ({ event }) => loadFailure(event.error, 'file') },
          ],
        },
      },
      on: {
        'table.received': { actions: 'enqueue' },
        drain: { target: 'draining', actions: assign({ exitAfterDrain: ({ event }) => event.exit }) },
      },
    },
    applying: {
      initial: 'checking',
      states: {
        checking: {
          always: [
            { guard: 'candidateAccepted', target: 'swapping' },
            { target: '#egress.serving', actions: 'recordRejection' },
          ],
        },
        swapping: {
          invoke: {
            src: 'applyTable',
            input: ({ context }) => ({ table: acceptedTable(context.candidate) }),
            onDone: { target: '#egress.serving', actions: 'recordSwap' },
            onError: {
              target: '#egress.serving',
              actions: assign(({ context, event }) =>
                withRejection(context, { reason: 'apply-failed', problems: [errorText(event.error)], source: 'file' }),
              ),
            },
          },
        },
      },
      on: {
        'table.received': { actions: 'enqueue' },
        drain: { target: 'draining', actions: assign({ exitAfterDrain: ({ event }) => event.exit }) },
      },
    },
    draining: {
      invoke: {
        src: 'drain',
        onDone: [{ guard: 'exitAfterDrain', target: 'stopped' }, { target: 'drained' }],
        onError: { target: 'stopped', actions: assign({ error: ({ event }) => errorText(event.error) }) },
      },
      on: {
        drain: { actions: assign({ exitAfterDrain: ({ context, event }) => context.exitAfterDrain || event.exit }) },
      },
    },
    drained: {
      on: { drain: { guard: ({ event }) => event.exit, target: 'stopped' } },
    },
    stopped: { type: 'final' },
  },
})

function admitEvent({ context, event }: { context: EgressContext; event: EgressEvent }): Admission | undefined {
  if (event.type !== 'table.received') return context.candidate
  return admitTable(admissionBase(context), event.table, event.source, context.zone, context.trustedKeys)
}

function acceptedTable(candidate: Admission | undefined): ZoneTable {
  if (candidate?.ok !== true) throw new Error('no accepted candidate')
  return candidate.table
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function describe(r: TableRejected): string {
  return `${r.reason}: ${r.problems.slice(0, 3).join('; ')}`
}
