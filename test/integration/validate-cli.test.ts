import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * `zonegate validate` as a real child process of the built CLI (dist/): exit codes, compiler-style text
 * output naming file:line:column for each violation, and the JSON shape of docs/design.md §5.
 */
const root = resolve(import.meta.dirname, '../..')
const cli = join(root, 'dist/cli/main.js')
let dir: string

function zonegate(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, 'validate', ...args], { encoding: 'utf8', timeout: 20_000 })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

beforeAll(() => {
  // dist/ is built by vitest's global setup (test/helpers/global-build.ts)
  dir = mkdtempSync(join(tmpdir(), 'zonegate-validate-'))
  cpSync(join(root, 'gitops-example'), join(dir, 'repo'), { recursive: true })
  const egress = join(dir, 'repo/zones/zone-a/zone-egresses/egress-1.yaml')
  writeFileSync(egress, readFileSync(egress, 'utf8').replace('port: 10002', 'port: 0'))
  const mesh = join(dir, 'repo/meshes/default.yaml')
  writeFileSync(mesh, readFileSync(mesh, 'utf8').replace('enabledBackend: ca-1', 'enabledBackend: ""'))
  writeFileSync(join(dir, 'repo/external-services/broken.yaml'), 'type: ExternalService\nname: x\nmesh: [\n')
}, 120_000)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('validate cli', () => {
  it('validate cli - gitops-example is valid: exit 0 and a summary', () => {
    const r = zonegate(join(root, 'gitops-example'))
    expect(r.code).toBe(0)
    expect(r.out.trim()).toMatch(/: valid \(13 resources, 0 warnings\)$/)
  })

  it('validate cli - a broken copy exits 1 naming file:line:column for each violation', () => {
    const r = zonegate(join(dir, 'repo'))
    expect(r.code).toBe(1)
    const lines = r.out.trim().split('\n')
    expect(lines).toContain('meshes/default.yaml:5:3 Mesh/default mtls: has to be set when zoneEgress enabled')
    expect(lines).toContain(
      'zones/zone-a/zone-egresses/egress-1.yaml:6:9 ZoneEgress/ze-a networking.port: port must be in the range [1, 65535]',
    )
    expect(lines.some((l) => /^external-services\/broken\.yaml:\d+:\d+ /.test(l))).toBe(true)
    for (const l of lines.slice(0, -1)) expect(l).toMatch(/^[\w./-]+\.yaml:\d+:\d+ /)
    expect(lines.at(-1)).toMatch(/: invalid \(3 violations, 0 warnings\)$/)
  })

  it('validate cli - JSON output has the shape { valid, violations, warnings }', () => {
    const r = zonegate(join(dir, 'repo'), '--output', 'json')
    expect(r.code).toBe(1)
    const body = JSON.parse(r.out) as { valid: boolean; violations: Record<string, unknown>[]; warnings: unknown[] }
    expect(body.valid).toBe(false)
    expect(body.warnings).toEqual([])
    expect(body.violations).toContainEqual({
      file: 'meshes/default.yaml',
      line: 5,
      column: 3,
      kind: 'Mesh',
      name: 'default',
      path: 'mtls',
      rule: 'mesh.zone-egress-requires-mtls',
      message: 'has to be set when zoneEgress enabled',
    })
    for (const v of body.violations)
      expect(Object.keys(v).sort()).toEqual(['column', 'file', 'kind', 'line', 'message', 'name', 'path', 'rule'])
  })

  it('validate cli - a single file is validated on its own', () => {
    const r = zonegate(join(root, 'gitops-example/meshes/legacy.yaml'), '--output', 'json')
    expect(r.code).toBe(0)
    expect(JSON.parse(r.out)).toEqual({ valid: true, violations: [], warnings: [] })
  })

  it('validate cli - usage and I/O errors exit 2', () => {
    expect(zonegate(join(dir, 'missing')).code).toBe(2)
    expect(zonegate().code).toBe(2)
    const outside = join(dir, 'escape')
    cpSync(join(root, 'gitops-example/meshes'), outside, { recursive: true })
    symlinkSync(join(root, 'gitops-example/meshes/default.yaml'), join(outside, 'outside.yaml'))
    const r = zonegate(outside)
    expect(r.code).toBe(2)
    expect(r.err).toContain('outside.yaml: symlink leaves the folder')
  })
})
