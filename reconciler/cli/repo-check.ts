import { existsSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { UsageError } from '../../lib/common.js'

/** True for an http(s) (or other scheme) URL rather than a local path. Pure. */
export const isRepoUrl = (repo: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(repo)

/**
 * Checks that a local `--repo` is a Git repository (a working copy with `.git`, or a bare repository with
 * `HEAD` and `objects/`); throws a UsageError (exit 2) that says what is wrong and how to fix it. URLs pass.
 */
export function assertLocalRepository(repo: string, flag = '--repo'): void {
  if (isRepoUrl(repo)) return
  const dir = resolve(repo)
  if (!existsSync(dir)) throw new UsageError(`${flag} ${repo}: no such directory`)
  if (!statSync(dir).isDirectory()) throw new UsageError(`${flag} ${repo}: not a directory`)
  const bare = existsSync(join(dir, 'HEAD')) && existsSync(join(dir, 'objects'))
  if (!bare && !existsSync(join(dir, '.git')))
    throw new UsageError(
      `${flag} ${repo} is not a Git repository (no .git, and not a bare repository): ` +
        `run \`git init && git add -A && git commit -m init\` in it, or give the repository's http(s) URL`,
    )
}
