import { parentPort } from 'node:worker_threads'
import type { AdmissionOutput, AdmissionPhases } from '../core/admission.js'
import { transferList } from '../core/compact-table.js'
import { type AdmissionWork, admitWork } from './admission-work.js'

/**
 * The admission worker thread (docs/decisions/012-off-loop-admission.md): receives `{id, input}` (an input, or a
 * table file to read here: admission-work.ts), runs the
 * whole admission (decode, parse, schema, digest, compact routes; egress/core/admission.ts) and posts back
 * `{id, out, ms}`, transferring the compact table's buffers to the event loop without a copy.
 */
export interface AdmissionRequest {
  id: number
  input: AdmissionWork
}

export interface AdmissionReply {
  id: number
  out: AdmissionOutput
  /** Time spent in this thread, in ms. */
  ms: number
  /** Time of each stage, in ms (an admitted table). */
  phases?: Partial<AdmissionPhases>
  /** A table file that could not be read: the read's error message. */
  readError?: string
}

const port = parentPort
if (port) {
  port.on('message', (m: AdmissionRequest) => {
    const t0 = performance.now()
    const phases: Partial<AdmissionPhases> = {}
    const { out, readError } = admitWork(m.input, phases)
    const reply: AdmissionReply = {
      id: m.id,
      out,
      ms: performance.now() - t0,
      phases,
      ...(readError === undefined ? {} : { readError }),
    }
    port.postMessage(reply, out.ok ? transferList(out.compact) : [])
  })
}
