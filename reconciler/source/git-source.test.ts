import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createGitRepo } from '../../test/helpers/git-repo.js'
import { createGitSource, gitCredentials, redactUrl } from './git-source.js'

const log = pino({ level: 'silent' })

describe('git-source', () => {
  it.each([
    ['https://user:pw@git.example/org/repo.git?token=x#frag', 'https://git.example/org/repo.git'],
    ['http://127.0.0.1:8080/repo', 'http://127.0.0.1:8080/repo'],
    ['/srv/git/repo.git', '/srv/git/repo.git'],
  ])('git-source - redactUrl(%s) is %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown)
  })

  it.each([
    ['userinfo wins', 'https://u:p%40ss@h/r', { ZONEGATE_GIT_TOKEN: 't' }, { username: 'u', password: 'p@ss' }],
    [
      'username/password env',
      'https://h/r',
      { ZONEGATE_GIT_USERNAME: 'a', ZONEGATE_GIT_PASSWORD: 'b' },
      { username: 'a', password: 'b' },
    ],
    ['token env', 'https://h/r', { ZONEGATE_GIT_TOKEN: 't' }, { username: 'x-access-token', password: 't' }],
    ['none', 'https://h/r', {}, undefined],
  ])('git-source - credentials: %s', (_name, url, env, expected) => {
    expect(gitCredentials(url, env)).toEqual(expected)
  })

  describe('local repositories', () => {
    let dir: string
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'zonegate-gitsrc-'))
    })
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true })
    })

    it.each([false, true])(
      'git-source - reads the branch tip of a repository (bare: %s) under --path',
      async (bare) => {
        const repo = await createGitRepo({
          dir: join(dir, `r-${bare}`),
          bare,
          files: {
            'deploy/a.yaml': 'a: 1\n',
            'deploy/sub/b.yml': 'b: 2\n',
            'other/c.yaml': 'c: 3\n',
            'README.md': '#',
          },
        })
        const source = createGitSource({ repo: repo.dir, branch: 'main', path: 'deploy', cacheDir: dir, log })
        const sha = await source.resolve()
        expect(sha).toBe(await repo.head())
        const snap = await source.fetch()
        expect(snap.revision).toBe(`main@sha1:${sha}`)
        expect([...snap.files.keys()]).toEqual(['a.yaml', 'sub/b.yml'])
        const sha2 = await repo.commit({ 'deploy/a.yaml': 'a: 2\n' })
        expect(await source.resolve()).toBe(sha2)
        expect(Buffer.from((await source.fetch(sha2)).files.get('a.yaml') as Uint8Array).toString()).toBe('a: 2\n')
      },
    )

    it('git-source - a missing branch is a transient FetchFailed, a missing path is PathNotFound', async () => {
      const repo = await createGitRepo({ dir: join(dir, 'r-missing'), files: { 'a.yaml': 'a: 1\n' } })
      const noBranch = createGitSource({ repo: repo.dir, branch: 'nope', cacheDir: dir, log })
      await expect(noBranch.resolve()).rejects.toMatchObject({ code: 'FetchFailed' })
      const noPath = createGitSource({ repo: repo.dir, branch: 'main', path: 'missing', cacheDir: dir, log })
      await expect(noPath.fetch()).rejects.toMatchObject({ code: 'PathNotFound' })
    })
  })
})
