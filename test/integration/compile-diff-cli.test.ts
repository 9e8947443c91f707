import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import git from 'isomorphic-git'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ZoneDiff } from '../../reconciler/core/diff.js'
import type { ZoneTable } from '../../schemas/table.js'

/**
 * `zonegate compile` and `zonegate diff` as real child processes of the built CLI (dist/): JSON and text output,
 * exit codes 0/1/2/3, diff between folders and between commits of a real Git repository written with
 * isomorphic-git (init, add, commit, tag) in a temporary directory.
 */
const root = resolve(import.meta.dirname, '../..')
const cli = join(root, 'dist/cli/main.js')
const fixtures = join(root, 'test/fixtures/compile')
let dir: string
let repo: string
let first: string

function zonegate(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 20_000 })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

const author = { name: 'zonegate test', email: 'test@zonegate.invalid' }
function writeFiles(base: string, files: Record<string, string | null>) {
  for (const [path, text] of Object.entries(files)) {
    const full = join(base, path)
    if (text === null) fs.rmSync(full, { force: true })
    else {
      fs.mkdirSync(dirname(full), { recursive: true })
      fs.writeFileSync(full, text)
    }
  }
}
async function commit(files: Record<string, string | null>, message: string): Promise<string> {
  writeFiles(repo, files)
  for (const [path, text] of Object.entries(files))
    if (text === null) await git.remove({ fs, dir: repo, filepath: path })
    else await git.add({ fs, dir: repo, filepath: path })
  return git.commit({ fs, dir: repo, message, author })
}
const exampleFiles = (prefix: string) => {
  const out: Record<string, string> = {}
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`)
      else out[`${prefix}${rel}${e.name}`] = fs.readFileSync(join(d, e.name), 'utf8')
    }
  }
  walk(join(root, 'gitops-example'), '')
  return out
}
const ingressB = 'config/zones/zone-b/zone-ingresses/ingress-1.yaml'

beforeAll(async () => {
  // dist/ is built by vitest's global setup (test/helpers/global-build.ts)
  dir = fs.mkdtempSync(join(tmpdir(), 'zonegate-compile-diff-'))
  repo = join(dir, 'repo')
  await git.init({ fs, dir: repo, defaultBranch: 'main' })
  first = await commit({ ...exampleFiles('config/'), 'README.md': '# not yaml\n' }, 'initial')
  await git.annotatedTag({ fs, dir: repo, ref: 'v1', object: first, message: 'v1', tagger: author })
  const ingress = fs.readFileSync(join(repo, ingressB), 'utf8')
  await commit(
    {
      [ingressB]: ingress.replace('instances: 3', 'instances: 7'),
      'config/external-services/new.yaml':
        'type: ExternalService\nname: new-api\nmesh: default\ntags:\n  kuma.io/service: new-api\nnetworking:\n  address: new.example.com:443\n',
    },
    'reweight billing, add new-api',
  )
  await git.branch({ fs, dir: repo, ref: 'broken', checkout: true })
  await commit({ 'config/meshes/broken.yaml': 'type: Mesh\nname: Bad_Name\n' }, 'invalid mesh name')
}, 120_000)

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('compile cli', () => {
  it('compile cli - JSON output is the golden envelope plus the folder revision (exit 0)', () => {
    const input = join(fixtures, 'two-zones-external-and-cross-zone/input')
    const r = zonegate('compile', input, '--zone', 'zone-b', '--output', 'json')
    expect(r.code).toBe(0)
    const table = JSON.parse(r.out) as ZoneTable
    const golden = (JSON.parse(fs.readFileSync(join(input, '../expected.json'), 'utf8')) as ZoneTable[])[1]
    expect(table).toEqual({ ...golden, revision: `path:${input}` })
    expect(Object.keys(table)).toEqual(['apiVersion', 'kind', 'zone', 'revision', 'digest', 'egresses', 'routes'])
  })

  it('compile cli - text output lists SNI, mode and upstreams with weights (exit 0)', () => {
    const r = zonegate('compile', join(root, 'gitops-example'), '--zone', 'zone-a')
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/^zone zone-a {2}revision path:/)
    expect(r.out).toMatch(/\nbilling\{mesh=default\} +passthrough +127\.0\.0\.1:10011 w3 \(zone-b\)\n/)
    expect(r.out).toMatch(
      /\nsecure-api\{mesh=default\} +terminate-mtls +127\.0\.0\.1:18443 w1 tls api\.example\.test {2}allow web\n/,
    )
    expect(r.out).not.toContain('legacy')
  })

  it('compile cli - an invalid snapshot exits 1 and prints file:line:column violations', () => {
    const r = zonegate('compile', join(repo, 'config'), '--zone', 'zone-a')
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/^meshes\/broken\.yaml:2:7 Mesh\/Bad_Name name: /m)
    expect(r.out).toBe('')
  })

  it('compile cli - a zone without ZoneEgress exits 2 naming the zones that have one', () => {
    const r = zonegate('compile', join(root, 'gitops-example'), '--zone', 'zone-z')
    expect(r.code).toBe(2)
    expect(r.err).toContain('zone "zone-z" has no ZoneEgress')
    expect(r.err).toContain('zones with a ZoneEgress: zone-a, zone-b')
  })

  it('compile cli - a missing folder or a missing --zone exits 2', () => {
    expect(zonegate('compile', join(dir, 'missing'), '--zone', 'a').code).toBe(2)
    expect(zonegate('compile', join(root, 'gitops-example')).code).toBe(2)
  })
})

describe('diff cli', () => {
  const caseDir = (name: string) => join(fixtures, name, 'input')

  it('diff cli - identical folders exit 0', () => {
    const r = zonegate('diff', caseDir('extra-tags'), caseDir('extra-tags'))
    expect(r.code).toBe(0)
    expect(r.out).toContain('zone-a: unchanged')
  })

  it('diff cli - different folders exit 3 with per-zone route changes (text and JSON)', () => {
    const from = caseDir('two-zones-external-and-cross-zone')
    const to = caseDir('external-service-pinned')
    const text = zonegate('diff', from, to)
    expect(text.code).toBe(3)
    expect(text.out).toContain('  - httpbin{mesh=default}  external terminate-mtls  httpbin.org:443 w1 tls httpbin.org')
    expect(text.out).toContain('zone-c: added (3 routes)')
    const json = zonegate('diff', from, to, '--output', 'json')
    expect(json.code).toBe(3)
    const body = JSON.parse(json.out) as { changed: boolean; zones: ZoneDiff[] }
    expect(body.changed).toBe(true)
    expect(body.zones.map((z) => [z.zone, z.status])).toEqual([
      ['zone-a', 'changed'],
      ['zone-b', 'changed'],
      ['zone-c', 'added'],
    ])
  })

  it('diff cli - an invalid side exits 1 and names it', () => {
    const r = zonegate('diff', caseDir('extra-tags'), join(repo, 'config'))
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/^to: meshes\/broken\.yaml:2:7 /m)
  })

  it('diff cli - two commits of a repository, by sha and branch, under --path (exit 3)', () => {
    const r = zonegate('diff', first, 'main', '--repo', repo, '--path', 'config', '--output', 'json')
    expect(r.code).toBe(3)
    const body = JSON.parse(r.out) as { from: string; to: string; zones: ZoneDiff[] }
    expect(body.from).toBe(`${first}@sha1:${first}`)
    expect(body.to).toMatch(/^main@sha1:[0-9a-f]{40}$/)
    const a = body.zones.find((z) => z.zone === 'zone-a')
    expect(a?.routes.added.map((x) => x.sni)).toEqual(['new-api{mesh=default}'])
    expect(a?.routes.changed.map((c) => [c.sni, c.upstreams])).toEqual([
      ['billing{mesh=default}', [{ address: '127.0.0.1', port: 10011, zone: 'zone-b', before: 3, after: 7 }]],
    ])
    const text = zonegate('diff', first.slice(0, 10), 'main', '--repo', repo, '--path', 'config')
    expect(text.code).toBe(3)
    expect(text.out).toContain('  ~ billing{mesh=default}  127.0.0.1:10011 (zone-b) w3 → w7')
  })

  it('diff cli - the same revision through a tag and its sha exits 0', () => {
    const r = zonegate('diff', 'v1', first, '--repo', repo, '--path', 'config')
    expect(r.code).toBe(0)
    expect(r.out).toContain('0 zones changed, 2 unchanged')
  })

  it('diff cli - an invalid revision exits 1; an unknown ref exits 2 naming it', () => {
    expect(zonegate('diff', 'main', 'broken', '--repo', repo, '--path', 'config').code).toBe(1)
    const r = zonegate('diff', 'main', 'no-such-branch', '--repo', repo, '--path', 'config')
    expect(r.code).toBe(2)
    expect(r.err).toContain('ref "no-such-branch" not found')
  })

  it('diff cli - changing the CA of a mesh whose mTLS stays on is reported on the TO side (exit 1, Kuma message)', () => {
    const mesh = (backend: string) =>
      `type: Mesh\nname: default\nmtls:\n  enabledBackend: ${backend}\n  backends:\n  - name: ${backend}\n    type: builtin\n`
    const a = join(dir, 'ca-from')
    const b = join(dir, 'ca-to')
    writeFiles(a, { 'mesh.yaml': mesh('ca-1') })
    writeFiles(b, { 'mesh.yaml': mesh('ca-2') })
    const r = zonegate('diff', a, b)
    expect(r.code).toBe(1)
    expect(r.err).toContain(
      'to: mesh.yaml:4:19 Mesh/default mtls.enabledBackend: Changing CA when mTLS is enabled is forbidden. Disable mTLS first and then change the CA',
    )
    const json = zonegate('diff', a, b, '--output', 'json')
    expect(json.code).toBe(1)
    expect(JSON.parse(json.out).to.violations[0]).toMatchObject({
      path: 'mtls.enabledBackend',
      rule: 'mesh.mtls-ca-change',
    })
  })
})
