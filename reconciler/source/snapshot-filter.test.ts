import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createGitRepo, type GitRepo } from '../../test/helpers/git-repo.js'
import { createSnapshotFilter } from '../core/snapshot-filter.js'
import { readFolderSnapshot } from './folder-source.js'
import { readGitSnapshot } from './git-tree.js'

/**
 * Files that are not resources (Flux's `.sourceignore` model): dot-folders are skipped by default and
 * `.zonegateignore` (gitignore syntax) adds patterns. The folder source and the Git source must read the same files.
 */

const MESH = 'type: Mesh\nname: default\n'
const TREE: Record<string, string> = {
  'meshes/default.yaml': MESH,
  '.github/workflows/ci.yml': 'on: push\njobs: {}\n',
  '.kuma/extra.yaml': 'type: Mesh\nname: extra\n',
  'zones/.cache/x.yaml': 'junk: true\n',
  'drafts/wip.yaml': 'type: Mesh\nname: wip\n',
  'zones/a/egress.tmpl.yaml': 'type: ZoneEgress\nname: {{ .name }}\n',
  'zones/a/egress.yaml': 'type: ZoneEgress\nname: ze\nnetworking:\n  port: 1\n',
  '.zonegateignore': '# not resources\ndrafts/\n*.tmpl.yaml\n!.kuma/\n',
}
const EXPECTED = ['.kuma/extra.yaml', 'meshes/default.yaml', 'zones/a/egress.yaml']

describe('snapshot filter', () => {
  const cases: { title: string; ignore?: string; path: string; dir?: boolean; skipped: boolean }[] = [
    { title: 'a dot-folder is skipped by default', path: '.github', dir: true, skipped: true },
    { title: 'a file under a dot-folder is skipped', path: '.github/workflows/ci.yml', skipped: true },
    { title: 'a nested dot-folder is skipped', path: 'zones/.cache', dir: true, skipped: true },
    { title: 'an ordinary folder is read', path: 'meshes', dir: true, skipped: false },
    { title: 'a dot-file at the root is still read', path: '.mesh.yaml', skipped: false },
    { title: 'a folder pattern', ignore: 'drafts/\n', path: 'drafts', dir: true, skipped: true },
    { title: 'a glob pattern at any depth', ignore: '*.tmpl.yaml', path: 'a/b/x.tmpl.yaml', skipped: true },
    { title: 'a negation brings a dot-folder back', ignore: '!.kuma/\n', path: '.kuma', dir: true, skipped: false },
    { title: 'an anchored pattern', ignore: '/only-root.yaml', path: 'sub/only-root.yaml', skipped: false },
    { title: 'comments and blank lines', ignore: '# drafts/\n\n', path: 'drafts/x.yaml', skipped: false },
  ]
  for (const c of cases)
    it(`snapshot filter - ${c.title}`, () => {
      const f = createSnapshotFilter(c.ignore)
      expect(c.dir ? f.skipsFolder(c.path) : f.skipsFile(c.path)).toBe(c.skipped)
    })

  let folder: string
  let repo: GitRepo
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'zonegate-ignore-'))
    for (const [rel, text] of Object.entries(TREE)) {
      await mkdir(dirname(join(folder, rel)), { recursive: true })
      await writeFile(join(folder, rel), text)
    }
    repo = await createGitRepo({
      files: Object.fromEntries(Object.entries(TREE).map(([k, v]) => [`config/${k}`, v])),
    })
  })
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true })
    await repo.remove()
  })

  it('snapshot filter - the folder source skips dot-folders and honours .zonegateignore', async () => {
    expect([...(await readFolderSnapshot(folder)).files.keys()].sort()).toEqual(EXPECTED)
  })

  it('snapshot filter - the Git source reads the same files (ignore file at --path)', async () => {
    const snap = await readGitSnapshot({ dir: repo.dir, ref: 'main', path: 'config' })
    expect([...snap.files.keys()].sort()).toEqual(EXPECTED)
  })

  it('snapshot filter - without an ignore file only dot-folders are skipped', async () => {
    const sha = await repo.commit({ 'config/.zonegateignore': null })
    const snap = await readGitSnapshot({ dir: repo.dir, ref: sha, path: 'config' })
    expect([...snap.files.keys()].sort()).toEqual([
      'drafts/wip.yaml',
      'meshes/default.yaml',
      'zones/a/egress.tmpl.yaml',
      'zones/a/egress.yaml',
    ])
  })
})
