import { readFileSync } from 'node:fs'
import { type AdmissionInput, type AdmissionOutput, type AdmissionPhases, admit } from '../core/admission.js'

/**
 * What the table admitter admits (egress/transport/table-admitter.ts): an input already in memory, or a table file
 * named by its path (`--static`), which the admission worker thread reads itself: the file's bytes are then never
 * on the event loop (neither copied into the message to the thread, ~20–60 ms for 17 MB, nor garbage on its heap).
 */
export type AdmissionWork =
  | AdmissionInput
  | { kind: 'file'; path: string; zone?: string; trustedKeys?: readonly string[] }

/**
 * The input of `work`: a file is read (synchronously: in the worker thread, or on the event loop when the thread
 * is unavailable) and admitted as `from: 'file'`; `readError` is the read's error message (the file's path in it).
 */
export function workInput(work: AdmissionWork): { input: AdmissionInput } | { readError: string } {
  if (work.kind !== 'file') return { input: work }
  let bytes: Uint8Array
  try {
    bytes = readFileSync(work.path)
  } catch (err) {
    return { readError: (err as Error).message }
  }
  return {
    input: {
      kind: 'json',
      from: 'file',
      bytes,
      ...(work.zone === undefined ? {} : { zone: work.zone }),
      ...(work.trustedKeys === undefined ? {} : { trustedKeys: work.trustedKeys }),
    },
  }
}

/**
 * Runs `work` through the admission (egress/core/admission.ts); never throws. A file that cannot be read is refused
 * as `load-failed` with the read's message, and `readError` says so (the caller reports it as it reported a failed
 * read before the admission moved off the loop).
 */
export function admitWork(
  work: AdmissionWork,
  phases?: Partial<AdmissionPhases>,
): { out: AdmissionOutput; readError?: string } {
  const w = workInput(work)
  if ('readError' in w)
    return { out: { ok: false, stage: 'json', reason: 'load-failed', problems: [w.readError] }, readError: w.readError }
  try {
    return { out: admit(w.input, phases) }
  } catch (err) {
    return { out: { ok: false, stage: 'json', reason: 'load-failed', problems: [(err as Error).message] } }
  }
}
