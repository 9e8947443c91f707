import { join } from 'node:path'
import fc from 'fast-check'
import { pino } from 'pino'
import { beforeAll, describe, expect, it } from 'vitest'
import { parseAllDocuments, stringify } from 'yaml'
import { compileZoneTables } from '../../reconciler/core/compile.js'
import type { BuiltEvent } from '../../reconciler/core/events.js'
import type { Snapshot } from '../../reconciler/core/model.js'
import { validateSnapshot } from '../../reconciler/core/validate/index.js'
import { initialPassState } from '../../reconciler/pass-state.js'
import { reconcileOnce } from '../../reconciler/reconcile.js'
import { readFolderSnapshot } from '../../reconciler/source/folder-source.js'
import type { PassDeps } from '../../reconciler/steps/types.js'

/**
 * The crash class of issue #10: a typo (a missing or mistyped field anywhere in a valid resource) must give
 * violations, never an exception — in validate, in compile (on whatever validate lets through) and in the
 * reconciler's pass, which must report `commit.<sha>.invalid` (so `rollout watch` ends) instead of failing and
 * retrying on every poll. Kuma's kumactl reports such documents as violations (`pkg/core/validators/types.go`:
 * validators collect violations, they do not panic).
 */

type Doc = { file: string; docs: unknown[] }
type Seg = string | number
const RETYPED: unknown[] = [null, 0, -1, 1.5, 70000, '', 'x', '0.0.0.0', true, [], {}, [1], { a: 1 }]

/** Every field path of a value (object keys and array indexes), depth first. */
function pathsOf(v: unknown, prefix: Seg[] = [], out: Seg[][] = []): Seg[][] {
  if (v !== null && typeof v === 'object')
    for (const [k, c] of Object.entries(v)) {
      const p = [...prefix, Array.isArray(v) ? Number(k) : k]
      out.push(p)
      pathsOf(c, p, out)
    }
  return out
}

/** Deletes (`undefined`) or replaces the field at `path` in a deep copy of `doc`. */
function mutate(doc: unknown, path: Seg[], to: unknown): unknown {
  const copy = structuredClone(doc)
  let cur = copy as Record<Seg, unknown>
  for (const s of path.slice(0, -1)) cur = cur[s] as Record<Seg, unknown>
  const last = path.at(-1) as Seg
  if (to !== undefined) cur[last] = to
  else if (Array.isArray(cur)) cur.splice(last as number, 1)
  else delete cur[last]
  return copy
}

const SHA = 'c'.repeat(40)

/** The pass on an in-memory source and bus (as reconciler/reconcile.test.ts), with the real validate and compile. */
async function pass(files: Map<string, string>) {
  const events: BuiltEvent[] = []
  const deps: PassDeps = {
    source: {
      resolve: async () => SHA,
      fetch: async (sha): Promise<Snapshot> => ({ revision: `main@sha1:${sha}`, files: new Map(files) }),
    },
    validate: (s) => validateSnapshot(s),
    compile: (r) => [...compileZoneTables(r).values()],
    bus: {
      readInventory: async () => new Map(),
      currentTable: async () => undefined,
      publishTable: async () => 1,
      removeTable: async () => {},
      maxTableBytes: () => 8 * 1024 * 1024,
      emit: async (e) => {
        events.push(e)
      },
    },
    allowEmpty: true,
    branch: 'main',
    now: () => new Date('2026-01-01T00:00:00Z'),
    log: pino({ level: 'silent' }),
  }
  return {
    report: await reconcileOnce(deps, initialPassState(), {
      signal: new AbortController().signal,
      fetched: () => {},
      publishing: () => {},
    }),
    events,
  }
}

describe('no throw (property)', () => {
  let base: Doc[]
  beforeAll(async () => {
    const snap = await readFolderSnapshot(join(import.meta.dirname, '../../gitops-example'))
    base = [...snap.files].map(([file, b]) => ({
      file,
      docs: parseAllDocuments(typeof b === 'string' ? b : new TextDecoder().decode(b)).map((d) => d.toJS()),
    }))
    expect(validateSnapshot(snap).violations).toEqual([])
  })

  const mutation = () =>
    fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.oneof(fc.constant(undefined), fc.constantFrom(...RETYPED)))

  /** Applies 1-3 mutations (delete or retype a random field of a random document) to the example repository. */
  function mutated(ms: [number, number, number, unknown][]): Map<string, string> {
    const docs = base.map((d) => ({ file: d.file, docs: [...d.docs] }))
    for (const [f, d, p, to] of ms) {
      const file = docs[f % docs.length] as Doc
      const i = d % file.docs.length
      const paths = pathsOf(file.docs[i])
      if (paths.length === 0) continue
      file.docs[i] = mutate(file.docs[i], paths[p % paths.length] as Seg[], to)
    }
    return new Map(docs.map((d) => [d.file, d.docs.map((x) => stringify(x)).join('---\n')]))
  }

  it('no throw - deleting or retyping any field gives violations from validate, and compile never throws', () => {
    fc.assert(
      fc.property(fc.array(mutation(), { minLength: 1, maxLength: 3 }), (ms) => {
        const files = mutated(ms)
        const result = validateSnapshot({ revision: 'path:x', files })
        expect(
          result.violations.filter((v) => v.rule.startsWith('internal') || v.rule === 'validate.internal'),
        ).toEqual([])
        for (const v of result.violations)
          expect(v.message).not.toMatch(/Cannot read properties|undefined|is not a function/)
        expect(() => compileZoneTables(result.resources)).not.toThrow()
      }),
      { numRuns: 400 },
    )
  })

  it('no throw - the reconciler pass reports every mutated commit as invalid or applied, never failed', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation(), { minLength: 1, maxLength: 2 }), async (ms) => {
        const { report, events } = await pass(mutated(ms))
        expect(['applied', 'invalid', 'unchanged']).toContain(report.result)
        if (report.result === 'invalid')
          expect(events.some((e) => e.subject === `zonegate.events.commit.${SHA}.invalid`)).toBe(true)
      }),
      { numRuns: 60 },
    )
  })

  const required: { title: string; yaml: string }[] = [
    { title: 'Mesh without name (typo nme:)', yaml: 'type: Mesh\nnme: default\n' },
    { title: 'ZoneEgress without networking', yaml: 'type: ZoneEgress\nname: ze\n' },
    { title: 'ZoneIngress without networking', yaml: 'type: ZoneIngress\nname: zi\n' },
    { title: 'ExternalService without tags or networking', yaml: 'type: ExternalService\nname: es\nmesh: default\n' },
    { title: 'ExternalService without mesh', yaml: 'type: ExternalService\nname: es\n' },
  ]
  for (const c of required)
    it(`no throw - ${c.title} is a violation and an invalid event`, async () => {
      const files = new Map([['r.yaml', c.yaml]])
      const result = validateSnapshot({ revision: 'path:x', files })
      expect(result.valid).toBe(false)
      expect(result.violations.length).toBeGreaterThan(0)
      const { report, events } = await pass(files)
      expect(report.result).toBe('invalid')
      expect(events.map((e) => e.subject)).toContain(`zonegate.events.commit.${SHA}.invalid`)
    })
})
