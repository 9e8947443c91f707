import * as fs from 'node:fs'
import git from 'isomorphic-git'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createGitRepo, type GitRepo } from '../../test/helpers/git-repo.js'
import { errorPolicy } from '../core/errors.js'
import { GitTreeError, readGitSnapshot, resolveCommit } from './git-tree.js'

const text = (b: Uint8Array | string | undefined) => (typeof b === 'string' ? b : Buffer.from(b ?? []).toString('utf8'))

describe('git-tree', () => {
  it.each([
    ['PathNotFound', 'stalled'],
    ['TooManyFiles', 'stalled'],
    ['RefNotFound', 'transient'],
  ] as const)('git-tree - %s is %s and raises FetchFailed with its code as reason', (code, kind) => {
    expect(errorPolicy(new GitTreeError(code, 'x', 'main'))).toEqual({ kind, condition: 'FetchFailed', reason: code })
  })

  let repo: GitRepo
  let bare: GitRepo
  let first: string
  let second: string

  beforeAll(async () => {
    repo = await createGitRepo({
      files: {
        'README.md': '# not yaml\n',
        'meshes/default.yaml': 'type: Mesh\nname: default\n',
        'config/zones/a.yml': 'type: ZoneEgress\nname: a\n',
        'config/zones/b.yaml': 'type: ZoneEgress\nname: b\n',
        'config/zones/notes.txt': 'x',
        'other/x.yaml': 'x: 1\n',
      },
    })
    first = await repo.head()
    second = await repo.commit({ 'config/zones/c.yaml': 'type: ZoneEgress\nname: c\n', 'other/x.yaml': null }, 'add c')
    await git.tag({ fs, gitdir: repo.gitdir, ref: 'light', object: first })
    await git.annotatedTag({
      fs,
      gitdir: repo.gitdir,
      ref: 'v1',
      object: first,
      message: 'v1',
      tagger: { name: 't', email: 't@zonegate.invalid' },
    })
    bare = await createGitRepo({ bare: true, files: { 'a.yaml': 'a: 1\n' } })
  })
  afterAll(async () => {
    await repo.remove()
    await bare.remove()
  })

  const cases: { title: string; ref: () => string; path?: string; files: string[]; sha: () => string }[] = [
    {
      title: 'branch, whole tree',
      ref: () => 'main',
      files: ['config/zones/a.yml', 'config/zones/b.yaml', 'config/zones/c.yaml', 'meshes/default.yaml'],
      sha: () => second,
    },
    {
      title: 'branch, sub-path',
      ref: () => 'main',
      path: 'config',
      files: ['zones/a.yml', 'zones/b.yaml', 'zones/c.yaml'],
      sha: () => second,
    },
    {
      title: 'nested sub-path with slashes',
      ref: () => 'main',
      path: '/config/zones/',
      files: ['a.yml', 'b.yaml', 'c.yaml'],
      sha: () => second,
    },
    { title: 'full sha', ref: () => first, path: 'config', files: ['zones/a.yml', 'zones/b.yaml'], sha: () => first },
    {
      title: 'abbreviated sha',
      ref: () => first.slice(0, 8),
      path: 'config',
      files: ['zones/a.yml', 'zones/b.yaml'],
      sha: () => first,
    },
    {
      title: 'lightweight tag',
      ref: () => 'light',
      path: 'config',
      files: ['zones/a.yml', 'zones/b.yaml'],
      sha: () => first,
    },
    {
      title: 'annotated tag is peeled',
      ref: () => 'v1',
      path: 'config',
      files: ['zones/a.yml', 'zones/b.yaml'],
      sha: () => first,
    },
  ]
  for (const c of cases) {
    it(`git-tree - reads ${c.title}`, async () => {
      const snap = await readGitSnapshot({ dir: repo.dir, ref: c.ref(), path: c.path, cache: {} })
      expect([...snap.files.keys()]).toEqual(c.files)
      expect(snap.revision).toBe(`${c.ref()}@sha1:${c.sha()}`)
    })
  }

  it('git-tree - file content comes from the object store', async () => {
    const snap = await readGitSnapshot({ dir: repo.dir, ref: 'main', path: 'meshes' })
    expect(text(snap.files.get('default.yaml'))).toBe('type: Mesh\nname: default\n')
  })

  it('git-tree - an oversized file is cut at the limit + 1 byte, as the folder source does', async () => {
    const snap = await readGitSnapshot({ dir: repo.dir, ref: 'main', path: 'meshes', limits: { maxFileBytes: 10 } })
    expect(snap.files.get('default.yaml')?.length).toBe(11)
  })

  it('git-tree - works on a bare repository', async () => {
    const snap = await readGitSnapshot({ dir: bare.dir, ref: 'main' })
    expect([...snap.files.keys()]).toEqual(['a.yaml'])
    expect(await resolveCommit({ dir: bare.dir, ref: 'refs/heads/main' })).toBe(await bare.head())
  })

  const errors: { title: string; ref: string; path?: string; code: string; message: RegExp; limits?: object }[] = [
    { title: 'missing branch', ref: 'nope', code: 'RefNotFound', message: /ref "nope" not found/ },
    { title: 'missing sha', ref: 'deadbeefdeadbeef', code: 'RefNotFound', message: /ref "deadbeefdeadbeef"/ },
    { title: 'missing path', ref: 'main', path: 'missing', code: 'PathNotFound', message: /path "missing"/ },
    { title: 'path is a file', ref: 'main', path: 'README.md', code: 'PathNotFound', message: /not a folder/ },
    { title: 'too many files', ref: 'main', code: 'TooManyFiles', message: /more than 2/, limits: { maxFiles: 2 } },
  ]
  for (const e of errors) {
    it(`git-tree - rejects ${e.title} with ${e.code}`, async () => {
      const err = await readGitSnapshot({ dir: repo.dir, ref: e.ref, path: e.path, limits: e.limits }).catch((x) => x)
      expect(err).toBeInstanceOf(GitTreeError)
      expect(err.code).toBe(e.code)
      expect(err.message).toMatch(e.message)
      expect(err.toJSON()).toMatchObject({ code: e.code, ref: e.ref })
    })
  }
})
