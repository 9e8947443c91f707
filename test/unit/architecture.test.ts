import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

/**
 * Enforces the layering of STYLE.md §1: reconciler/ and egress/ never import each other, nor the `zonegate` binary
 * (cli/); what both sides and the binary share lives in schemas/ (contracts) and lib/ (flags, logging, NATS
 * connection), which import neither side; pure code (every core/ folder and the pure files listed beside it)
 * imports only pure code, schemas/ and pure libraries; only cli/main.ts imports both sides.
 *
 * One list for Biome and this test: what is pure and which modules are I/O are read from biome.json (the
 * override whose `noRestrictedImports` names the I/O modules), so the linter (in the editor) and this test (in
 * CI) cannot drift apart.
 */
const root = resolve(import.meta.dirname, '../..')

interface BiomeOverride {
  includes?: string[]
  linter?: { rules?: { style?: { noRestrictedImports?: { options?: { paths?: Record<string, string> } } } } }
}
const biome = JSON.parse(readFileSync(join(root, 'biome.json'), 'utf8')) as { overrides: BiomeOverride[] }
const pureOverride = biome.overrides.find((o) => o.includes?.includes('**/core/**'))
const IO_MODULES = Object.keys(pureOverride?.linter?.rules?.style?.noRestrictedImports?.options?.paths ?? {})
const PURE_FILES = (pureOverride?.includes ?? []).filter((g) => !g.includes('*'))

function sourceFiles(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(join(root, dir))) {
    const p = join(root, dir, name)
    if (statSync(p).isDirectory()) out.push(...sourceFiles(relative(root, p)))
    else if (name.endsWith('.ts')) out.push(relative(root, p))
  }
  return out
}

/** Module specifiers a file imports; `valueOnly` leaves out `import type` (erased at run time). */
function importsOf(file: string, valueOnly = false): string[] {
  const text = readFileSync(join(root, file), 'utf8')
  const specs: string[] = []
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s([^'"]*?)from\s+['"]([^'"]+)['"]/g))
    if (!valueOnly || !/^type\s/.test(m[1] ?? '')) specs.push(m[2]!)
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specs.push(m[1]!)
  return specs
}

/** Path of a relative import as seen from `file` (relative to the repo root), or the bare module name. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return spec
  return relative(root, resolve(dirname(join(root, file)), spec)).replace(/\.js$/, '.ts')
}

const files = ['reconciler', 'egress', 'schemas', 'lib', 'cli'].flatMap((d) => sourceFiles(d))
const isPure = (f: string) => f.includes('/core/') || PURE_FILES.includes(f)

describe('architecture', () => {
  it('architecture - the checker sees imports and biome.json (guards against a vacuous pass)', () => {
    expect(files.length).toBeGreaterThan(5)
    expect(importsOf('cli/main.ts').map((s) => target('cli/main.ts', s))).toContain('egress/cli/index.ts')
    expect(IO_MODULES).toEqual(expect.arrayContaining(['node:fs', 'node:net', '@nats-io/transport-node', 'pino']))
    for (const f of PURE_FILES) expect(files, `${f} (listed as pure in biome.json) exists`).toContain(f)
  })

  it('architecture - reconciler/ and egress/ never import each other', () => {
    const bad: string[] = []
    for (const f of files) {
      const side = f.split('/')[0]
      for (const spec of importsOf(f)) {
        const t = target(f, spec)
        if (side === 'reconciler' && t.startsWith('egress/')) bad.push(`${f} -> ${spec}`)
        if (side === 'egress' && t.startsWith('reconciler/')) bad.push(`${f} -> ${spec}`)
        if (side === 'schemas' && (t.startsWith('egress/') || t.startsWith('reconciler/') || t.startsWith('cli/')))
          bad.push(`${f} -> ${spec}`)
      }
    }
    expect(bad).toEqual([])
  })

  it('architecture - reconciler/ and egress/ never import cli/; lib/ imports neither side nor cli/', () => {
    const bad: string[] = []
    for (const f of files) {
      const side = f.split('/')[0] as string
      for (const spec of importsOf(f)) {
        const t = target(f, spec)
        if (['reconciler', 'egress'].includes(side) && t.startsWith('cli/')) bad.push(`${f} -> ${spec}`)
        if (side === 'lib' && /^(reconciler|egress|cli)\//.test(t)) bad.push(`${f} -> ${spec}`)
      }
    }
    expect(bad).toEqual([])
  })

  it('architecture - only cli/main.ts imports both reconciler/ and egress/', () => {
    const both = files.filter((f) => {
      const ts = importsOf(f).map((s) => target(f, s))
      return ts.some((t) => t.startsWith('reconciler/')) && ts.some((t) => t.startsWith('egress/'))
    })
    expect(both).toEqual(['cli/main.ts'])
  })

  it('architecture - core/ imports only core/, schemas/ and pure libraries', () => {
    const bad: string[] = []
    for (const f of files.filter((f) => f.includes('/core/'))) {
      const side = f.split('/')[0]
      for (const spec of importsOf(f)) {
        const t = target(f, spec)
        if (spec.startsWith('.') && !t.startsWith(`${side}/core/`) && !t.startsWith('schemas/'))
          bad.push(`${f} -> ${spec} (outside core/ and schemas/)`)
      }
    }
    expect(bad).toEqual([])
  })

  it('architecture - pure code imports no I/O module, and at run time only pure code, schemas/ and libraries', () => {
    const bad: string[] = []
    for (const f of files.filter(isPure)) {
      for (const spec of importsOf(f)) if (IO_MODULES.includes(spec)) bad.push(`${f} -> ${spec} (I/O)`)
      for (const spec of importsOf(f, true)) {
        const t = target(f, spec)
        if (spec.startsWith('.') && !isPure(t) && !t.startsWith('schemas/')) bad.push(`${f} -> ${spec} (not pure)`)
      }
    }
    expect(bad).toEqual([])
  })
})
