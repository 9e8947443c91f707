import { parentPort } from 'node:worker_threads'
import { type AdmissionInput, type AdmissionOutput, type AdmissionPhases, admit } from '../core/admission.js'
import { transferList } from '../core/compact-table.js'

/**
 * The admission worker thread (docs/decisions/012-off-loop-admission.md): receives `{id, input}`, runs the
 * whole admission (decode, parse, schema, digest, compact routes; egress/core/admission.ts) and posts back
 * `{id, out, ms}`, transferring the compact table's buffers to the event loop without a copy.
 */
export interface AdmissionRequest {
  id: number
  input: AdmissionInput
}

export interface AdmissionReply {
  id: number
  out: AdmissionOutput
  /** Time spent in this thread, in ms. */
  ms: number
  /** Time of each stage, in ms (an admitted table). */
  phases?: Partial<AdmissionPhases>
}

const port = parentPort
if (port) {
  port.on('message', (m: AdmissionRequest) => {
    const t0 = performance.now()
    let out: AdmissionOutput
    const phases: Partial<AdmissionPhases> = {}
    try {
      out = admit(m.input, phases)
    } catch (err) {
      out = { ok: false, stage: 'json', reason: 'load-failed', problems: [(err as Error).message] }
    }
    const reply: AdmissionReply = { id: m.id, out, ms: performance.now() - t0, phases }
    port.postMessage(reply, out.ok ? transferList(out.compact) : [])
  })
}
