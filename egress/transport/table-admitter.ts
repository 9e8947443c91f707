import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import type { AdmissionOutput, AdmissionPhases } from '../core/admission.js'
import { type AdmissionWork, admitWork } from './admission-work.js'
import type { AdmissionReply, AdmissionRequest } from './admission-worker.js'

/**
 * Runs table admission in a worker thread (docs/decisions/012-off-loop-admission.md), so parsing and checking
 * a large table never holds the event loop that proxies connections. One worker, started on the first table;
 * after a table larger than `LARGE_INPUT_BYTES` it is ended, which hands its heap back to the OS (the egress's
 * RSS then holds the compact table, not the parse), and the next table starts a new one. Should the worker fail
 * (it cannot start, or it dies), the admission runs on the event loop instead, with a warning: same checks, only
 * slower for the proxy.
 */
export interface TableAdmitter {
  /**
   * Admits one input, or a table file the thread reads itself (admission-work.ts); never rejects. `thread` says
   * where it ran, `ms` how long it took there, `phases` how long each stage took (an admitted table), `readError`
   * why a file could not be read.
   */
  admit(input: AdmissionWork): Promise<{
    out: AdmissionOutput
    ms: number
    thread: 'worker' | 'event-loop'
    phases?: Partial<AdmissionPhases>
    readError?: string
  }>
  /**
   * Starts the worker now if none runs, so that its start (loading the admission modules) overlaps with
   * something else, e.g. fetching a large table's body. Never throws.
   */
  prepare(): void
  /** Workers started so far (one per large table, plus one). */
  workersStarted(): number
  close(): Promise<void>
}

/** Inputs above this (uncompressed bytes) end the worker after their admission. */
export const LARGE_INPUT_BYTES = 4 * 1024 * 1024

/** A file's size is not known before the thread reads it: counted as large (the worker is ended after it). */
const inputBytes = (i: AdmissionWork) =>
  i.kind === 'body' ? i.head.object.size : i.kind === 'file' ? Number.POSITIVE_INFINITY : i.bytes.length

/**
 * Starts the worker: the compiled .js next to this file, or, when this module runs from its .ts source (tests,
 * benchmarks under tsx or vitest), the .ts source loaded through tsx's loader registered in the worker thread.
 */
function newWorker(): Worker {
  const ts = import.meta.url.endsWith('.ts')
  const url = new URL(`./admission-worker.${ts ? 'ts' : 'js'}`, import.meta.url)
  if (!ts) return new Worker(url, { name: 'zonegate-admission' })
  const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}) })`
  return new Worker(boot, { eval: true, name: 'zonegate-admission' })
}

export interface TableAdmitterOptions {
  /**
   * Inputs above this many bytes end the worker after their admission (default `LARGE_INPUT_BYTES`). `--static`
   * passes 0: its tables come only at start and on SIGHUP, so no worker (and its heap) is kept between them.
   */
  endAfterBytes?: number
}

export function startTableAdmitter(log: Logger, o: TableAdmitterOptions = {}): TableAdmitter {
  const endAfterBytes = o.endAfterBytes ?? LARGE_INPUT_BYTES
  let worker: Worker | undefined
  let nextId = 1
  const pending = new Map<number, { input: AdmissionWork; resolve(r: AdmissionReply): void }>()
  let closed = false
  let started = 0

  const inline = (input: AdmissionWork): AdmissionReply => {
    const t0 = performance.now()
    const phases: Partial<AdmissionPhases> = {}
    const { out, readError } = admitWork(input, phases)
    return { id: 0, out, ms: performance.now() - t0, phases, ...(readError === undefined ? {} : { readError }) }
  }

  /** The worker failed: every pending admission runs on the event loop. */
  const fail = (w: Worker, err: unknown) => {
    if (worker === w) worker = undefined
    if (pending.size === 0) return
    log.warn({ err }, 'admission worker failed; admitting on the event loop')
    for (const [id, p] of pending) {
      pending.delete(id)
      p.resolve(inline(p.input))
    }
  }

  const spawn = (): Worker => {
    const w = newWorker()
    started++
    w.unref()
    w.on('message', (r: AdmissionReply) => {
      const p = pending.get(r.id)
      if (!p) return
      pending.delete(r.id)
      p.resolve(r)
    })
    w.on('error', (err) => fail(w, err))
    w.on('exit', (code) => fail(w, new Error(`admission worker exited with code ${code}`)))
    return w
  }

  return {
    async admit(input) {
      let reply: AdmissionReply
      let thread: 'worker' | 'event-loop' = 'worker'
      if (closed) {
        reply = inline(input)
        thread = 'event-loop'
      } else {
        try {
          worker ??= spawn()
          const w = worker
          const id = nextId++
          reply = await new Promise<AdmissionReply>((resolve) => {
            pending.set(id, {
              input,
              resolve: (r) => {
                if (r.id === 0) thread = 'event-loop'
                resolve(r)
              },
            })
            w.postMessage({ id, input } satisfies AdmissionRequest)
          })
        } catch (err) {
          log.warn({ err }, 'admission worker unavailable; admitting on the event loop')
          reply = inline(input)
          thread = 'event-loop'
        }
      }
      if (inputBytes(input) > endAfterBytes && worker !== undefined && pending.size === 0) {
        // ended before the table is handed on, so the egress's memory after the swap no longer holds the parse
        const w = worker
        worker = undefined
        await w.terminate()
      }
      return {
        out: reply.out,
        ms: reply.ms,
        thread,
        ...(reply.phases ? { phases: reply.phases } : {}),
        ...(reply.readError === undefined ? {} : { readError: reply.readError }),
      }
    },
    prepare() {
      if (closed || worker !== undefined) return
      try {
        worker = spawn()
      } catch (err) {
        log.warn({ err }, 'admission worker not started; it is started again with the next table')
      }
    },
    workersStarted: () => started,
    async close() {
      closed = true
      const w = worker
      worker = undefined
      if (w) await w.terminate()
    },
  }
}
