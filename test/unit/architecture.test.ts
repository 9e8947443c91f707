import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

/**
 * Enforces the layering of STYLE.md §1: reconciler/ and egress/ never import each other; core/ imports only
 * core/ and schemas/ (and pure libraries); only cli/main.ts imports both sides.
 */
const root = resolve(import.meta.dirname, '../..')
const IO_MODULES = [
  'node:fs',
  'node:fs/promises',
  'fs',
  'node:net',
  'node:tls',
  'node:http',
  'node:https',
  'node:child_process',
  'node:dgram',
  'node:dns',
  'node:os',
  'node:process',
  'isomorphic-git',
  '@nats-io/transport-node',
  '@nats-io/jetstream',
  '@nats-io/kv',
  'pino',
  'prom-client',
]

function sourceFiles(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(join(root, dir))) {
    const p = join(root, dir, name)
    if (statSync(p).isDirectory()) out.push(...sourceFiles(relative(root, p)))
    else if (name.endsWith('.ts')) out.push(relative(root, p))
  }
  return out
}

function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8')
  const specs: string[] = []
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g)) specs.push(m[1]!)
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specs.push(m[1]!)
  return specs
}

/** Path of a relative import as seen from `file` (relative to the repo root), or the bare module name. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return spec
  return relative(root, resolve(dirname(join(root, file)), spec))
}

const files = ['reconciler', 'egress', 'schemas', 'cli'].flatMap((d) => sourceFiles(d))

describe('architecture', () => {
  it('architecture - the checker sees imports (guards against a vacuous pass)', () => {
    expect(files.length).toBeGreaterThan(5)
    expect(importsOf('cli/main.ts').map((s) => target('cli/main.ts', s))).toContain('egress/cli/index.js')
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

  it('architecture - only cli/main.ts imports both reconciler/ and egress/', () => {
    const both = files.filter((f) => {
      const ts = importsOf(f).map((s) => target(f, s))
      return ts.some((t) => t.startsWith('reconciler/')) && ts.some((t) => t.startsWith('egress/'))
    })
    expect(both).toEqual(['cli/main.ts'])
  })

  it('architecture - core/ is pure: imports only core/, schemas/ and pure libraries', () => {
    const bad: string[] = []
    for (const f of files.filter((f) => f.includes('/core/'))) {
      const side = f.split('/')[0]
      for (const spec of importsOf(f)) {
        const t = target(f, spec)
        if (IO_MODULES.includes(t)) bad.push(`${f} -> ${spec} (I/O)`)
        else if (spec.startsWith('.') && !t.startsWith(`${side}/core/`) && !t.startsWith('schemas/'))
          bad.push(`${f} -> ${spec} (outside core/ and schemas/)`)
      }
    }
    expect(bad).toEqual([])
  })
})
