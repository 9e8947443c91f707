import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import git, { type AuthCallback } from 'isomorphic-git'
import http from 'isomorphic-git/http/node'
import type { Logger } from 'pino'
import { gitRevision } from '../../schemas/revision.js'
import { FetchFailed, type ReconcileError } from '../core/errors.js'
import type { Snapshot } from '../core/model.js'
import { GitTreeError, GitTreeErrorCode, readGitSnapshot } from './git-tree.js'

/**
 * The Git source (docs/design.md §4): `repo` is a local repository path (bare or not; read from its object store at
 * the branch tip, no checkout, no working tree needed) or an http(s) URL (cloned with isomorphic-git into
 * `cacheDir` — no checkout, single branch — then fetched). Nothing past this file knows the snapshot came
 * from Git: it hands out `Snapshot { revision: '<branch>@sha1:<sha>', files }`.
 *
 * Credentials for URLs come from the environment (`ZONEGATE_GIT_USERNAME` + `ZONEGATE_GIT_PASSWORD`, or
 * `ZONEGATE_GIT_TOKEN`), or from userinfo in the URL; they are handed to isomorphic-git through `onAuth` only and
 * never logged: URLs are shown through `redactUrl`.
 */
export interface GitSource {
  /** The repository as safe to log (userinfo and query stripped). */
  readonly display: string
  /** Cheap: the sha at the branch tip (a local ref read, or a `fetch` for URLs). Rejects with FetchFailed. */
  resolve(): Promise<string>
  /**
   * The snapshot at `sha` (default: `resolve()`); the last one is memoized. Rejects with FetchFailed (transient),
   * or GitTreeError `PathNotFound` / `TooManyFiles` when the revision itself is unusable.
   */
  fetch(sha?: string): Promise<Snapshot>
}

export interface GitSourceOptions {
  repo: string
  branch: string
  /** Sub-folder of the repository that is the snapshot root. */
  path?: string
  /** Where URL repositories are cloned (one sub-folder per URL and branch). */
  cacheDir: string
  log: Logger
  env?: NodeJS.ProcessEnv
}

/** A URL without userinfo, query or fragment (safe to log); other strings unchanged. Pure. */
export function redactUrl(repo: string): string {
  if (!/^https?:\/\//i.test(repo)) return repo
  try {
    const u = new URL(repo)
    return `${u.protocol}//${u.host}${u.pathname}`
  } catch {
    return repo.replace(/\/\/[^/@]*@/, '//').replace(/[?#].*$/, '')
  }
}

/** Credentials for a URL: from userinfo, else from the environment; undefined when none. */
export function gitCredentials(
  repo: string,
  env: NodeJS.ProcessEnv,
): { username: string; password: string } | undefined {
  try {
    const u = new URL(repo)
    if (u.username || u.password)
      return { username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) }
  } catch {}
  if (env.ZONEGATE_GIT_USERNAME || env.ZONEGATE_GIT_PASSWORD)
    return { username: env.ZONEGATE_GIT_USERNAME ?? '', password: env.ZONEGATE_GIT_PASSWORD ?? '' }
  if (env.ZONEGATE_GIT_TOKEN) return { username: 'x-access-token', password: env.ZONEGATE_GIT_TOKEN }
  return undefined
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err))

/** Creates the source. Nothing is read until `resolve()`/`fetch()`. */
export function createGitSource(opts: GitSourceOptions): GitSource {
  const env = opts.env ?? process.env
  const isUrl = /^https?:\/\//i.test(opts.repo)
  const display = redactUrl(opts.repo)
  const log = opts.log
  const cache = {}
  let memo: Snapshot | undefined
  let memoSha: string | undefined
  // Remote operations share one cache directory: run them one at a time.
  let queue: Promise<unknown> = Promise.resolve()
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn, fn)
    queue = p.catch(() => {})
    return p
  }

  // Content problems of a revision (path missing, file too large, too many files) keep their GitTreeError code:
  // retrying the same sha cannot help. Everything else is a transient FetchFailed.
  const fail = (what: string, err: unknown): ReconcileError =>
    err instanceof FetchFailed || (err instanceof GitTreeError && err.code !== GitTreeErrorCode.RefNotFound)
      ? err
      : new FetchFailed(display, `${what}: ${message(err).replaceAll(opts.repo, display)}`, { cause: err })

  // Local repository: `<repo>/.git` (non-bare) or `<repo>` itself (bare).
  const localGitdir = () => (fs.existsSync(join(opts.repo, '.git')) ? join(opts.repo, '.git') : opts.repo)

  // URL repository: a bare-like clone under cacheDir.
  const remoteUrl = (() => {
    if (!isUrl) return ''
    // isomorphic-git appends `/info/refs?service=…` to the URL, so a query string cannot be kept; credentials
    // travel through onAuth only.
    const u = new URL(opts.repo)
    return `${u.protocol}//${u.host}${u.pathname}`
  })()
  const cloneDir = join(
    opts.cacheDir,
    createHash('sha256').update(`${remoteUrl}#${opts.branch}`).digest('hex').slice(0, 16),
  )
  const creds = isUrl ? gitCredentials(opts.repo, env) : undefined
  const onAuth: AuthCallback = () => creds ?? { cancel: true }
  const onAuthFailure: AuthCallback = () => ({ cancel: true })
  let cloned = false

  const syncRemote = async (): Promise<string> => {
    const common = { fs, http, dir: cloneDir, gitdir: cloneDir, onAuth, onAuthFailure }
    if (!cloned && fs.existsSync(join(cloneDir, 'config'))) cloned = true
    if (!cloned) {
      await rm(cloneDir, { recursive: true, force: true })
      await mkdir(cloneDir, { recursive: true })
      const t0 = Date.now()
      try {
        await git.clone({
          ...common,
          url: remoteUrl,
          ref: opts.branch,
          singleBranch: true,
          noCheckout: true,
          noTags: true,
          cache,
        })
      } catch (err) {
        await rm(cloneDir, { recursive: true, force: true })
        throw err
      }
      cloned = true
      log.info({ repo: display, ms: Date.now() - t0 }, 'repository cloned')
    } else {
      await git.fetch({ ...common, url: remoteUrl, ref: opts.branch, singleBranch: true, tags: false, cache })
    }
    return git.resolveRef({ fs, gitdir: cloneDir, ref: `refs/remotes/origin/${opts.branch}` })
  }

  const resolve = async (): Promise<string> => {
    try {
      if (isUrl) return await serial(syncRemote)
      return await git.resolveRef({ fs, gitdir: localGitdir(), ref: `refs/heads/${opts.branch}` })
    } catch (err) {
      throw fail(`cannot resolve branch ${opts.branch} of ${display}`, err)
    }
  }

  return {
    display,
    resolve,
    async fetch(sha?: string) {
      const at = sha ?? (await resolve())
      if (memo && memoSha === at) return memo
      try {
        const dir = isUrl ? cloneDir : opts.repo
        const snapshot = await readGitSnapshot({ dir, ref: at, path: opts.path, cache })
        memo = { revision: gitRevision(opts.branch, at), files: snapshot.files }
        memoSha = at
        return memo
      } catch (err) {
        throw fail(`cannot read ${opts.path ? `${opts.path} at ` : ''}${at.slice(0, 12)} of ${display}`, err)
      }
    },
  }
}
