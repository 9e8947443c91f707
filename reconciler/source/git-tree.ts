import * as fs from 'node:fs'
import { join } from 'node:path'
import git from 'isomorphic-git'
import { gitRevision } from '../../schemas/revision.js'
import { isDataFile } from '../core/data-source.js'
import { ErrorKind, type ErrorPolicy, FailureCondition, ReconcileError } from '../core/errors.js'
import type { Snapshot } from '../core/model.js'
import { createSnapshotFilter, IGNORE_FILE, type SnapshotFilter } from '../core/snapshot-filter.js'

/**
 * Reads the YAML files of one revision of a Git repository straight from its object store (isomorphic-git): no
 * checkout, no working tree, no index. Works on bare repositories, on clones made with `noCheckout`, and on
 * ordinary repositories. Used by `zonegate diff --repo` and by the reconciler's Git source.
 */

/** Same limits as the folder source: a bigger snapshot is refused rather than half-read. */
export const GIT_SNAPSHOT_LIMITS = { maxFileBytes: 1024 * 1024, maxFiles: 10_000 } as const

export const GitTreeErrorCode = {
  /** The ref (branch, tag, sha) does not resolve to a commit. */
  RefNotFound: 'RefNotFound',
  /** `path` does not exist at that revision, or is a file. */
  PathNotFound: 'PathNotFound',
  TooManyFiles: 'TooManyFiles',
} as const
export type GitTreeErrorCode = (typeof GitTreeErrorCode)[keyof typeof GitTreeErrorCode]

/**
 * Why a revision could not be read. `code` is stable; `ref` and `path` say what was asked for. Raises FetchFailed
 * with the code as reason; stalled (retrying the same sha cannot help) except RefNotFound, which is retried.
 */
export class GitTreeError extends ReconcileError {
  constructor(
    readonly code: GitTreeErrorCode,
    message: string,
    readonly ref: string,
    readonly path?: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }

  protected override get policy(): ErrorPolicy {
    const kind = this.code === GitTreeErrorCode.RefNotFound ? ErrorKind.Transient : ErrorKind.Stalled
    return { kind, condition: FailureCondition.FetchFailed, reason: this.code }
  }

  override data(): Record<string, unknown> {
    return { ref: this.ref, ...(this.path === undefined ? {} : { path: this.path }) }
  }
}

export interface ReadGitSnapshotOptions {
  /** The repository: a working directory with `.git/`, or a bare repository / git directory itself. */
  dir: string
  /** A branch (`main`, `refs/heads/main`), a tag (`v1`, annotated tags are peeled), a remote-tracking ref
   * (`origin/main`), `HEAD`, or a full or abbreviated commit sha. */
  ref: string
  /** Sub-folder of the repository that is the snapshot root (default: the whole tree). */
  path?: string
  /** One long-lived isomorphic-git cache object shared across calls (much faster on packed repositories). */
  cache?: object
  /** Override the limits (tests). */
  limits?: { maxFileBytes?: number; maxFiles?: number }
}

/** The git directory of `dir`: `<dir>/.git` when it exists, else `dir` itself (bare). */
export function gitdirOf(dir: string): string {
  const dotGit = join(dir, '.git')
  return fs.existsSync(dotGit) ? dotGit : dir
}

/** `path` without leading/trailing slashes and `./`; `''` means the root. Pure. */
export function normalizeTreePath(path: string | undefined): string {
  const parts = (path ?? '').split('/').filter((p) => p !== '' && p !== '.')
  return parts.join('/')
}

/** YAML resources, and the data files `file` data sources may read (`*.pem`, `*.crt`, `*.cert`, `*.key`). */
const isYaml = (name: string) => name.endsWith('.yaml') || name.endsWith('.yml') || isDataFile(name)

/** The snapshot filter of a commit: defaults plus `<path>/.zonegateignore` when that blob exists. */
async function readSnapshotFilter(
  gitdir: string,
  sha: string,
  prefix: string,
  cache: object,
  maxBytes: number,
): Promise<SnapshotFilter> {
  let text: string | undefined
  try {
    const { blob } = await git.readBlob({ fs, gitdir, oid: sha, filepath: `${prefix}${IGNORE_FILE}`, cache })
    text = Buffer.from(blob.subarray(0, maxBytes)).toString('utf8')
  } catch {
    text = undefined // no ignore file at that revision
  }
  return createSnapshotFilter(text)
}

/**
 * Resolves `ref` to a commit sha: refs first (`resolveRef`), then an abbreviated sha (`expandOid`); annotated
 * tags are peeled to their commit. Rejects with GitTreeError `RefNotFound` (the message names the ref) when
 * nothing matches or the object is not a commit.
 */
export async function resolveCommit(opts: { dir: string; ref: string; cache?: object }): Promise<string> {
  const gitdir = gitdirOf(opts.dir)
  const cache = opts.cache ?? {}
  const notFound = (cause?: unknown) =>
    new GitTreeError(
      GitTreeErrorCode.RefNotFound,
      `ref "${opts.ref}" not found in ${opts.dir}`,
      opts.ref,
      undefined,
      cause === undefined ? undefined : { cause },
    )
  let oid: string | undefined
  try {
    oid = await git.resolveRef({ fs, gitdir, ref: opts.ref })
  } catch {
    if (/^[0-9a-f]{4,40}$/i.test(opts.ref)) {
      try {
        oid = await git.expandOid({ fs, gitdir, oid: opts.ref.toLowerCase(), cache })
      } catch (err) {
        throw notFound(err)
      }
    }
  }
  if (oid === undefined) throw notFound()
  // Peel annotated tags (a tag may point at a tag) down to the commit.
  for (let depth = 0; depth < 10; depth++) {
    let obj: Awaited<ReturnType<typeof git.readObject>>
    try {
      obj = await git.readObject({ fs, gitdir, oid, cache, format: 'parsed' })
    } catch (err) {
      throw notFound(err)
    }
    if (obj.type === 'commit') return oid
    if (obj.type !== 'tag') break
    oid = (obj.object as { object: string }).object
  }
  throw notFound()
}

/**
 * The snapshot of `ref`: every `*.yaml`/`*.yml` blob (and data file: `*.pem`, `*.crt`, `*.cert`, `*.key`) under
 * `path`, keyed by its path relative to `path` (posix), content as bytes, except dot-folders and what
 * `<path>/.zonegateignore` names (core/snapshot-filter.ts). One `walk` over the commit's tree with a shared cache;
 * folders off `path` are not descended.
 *
 * `revision` is `gitRevision(<ref as given>, sha)` (schemas/revision.ts: `main@sha1:…`, `v1.2@sha1:…`, and for a
 * raw sha the sha as given, e.g. `3f2a9c1@sha1:3f2a9c1…`), so `shaOfRevision` works on every form. Callers that know better (the
 * reconciler: `<branch>@sha1:<sha>`) overwrite it.
 *
 * Same limits as the folder source: a YAML file over 1 MiB is handed on cut at 1 MiB + 1 byte (the parser then
 * reports `parse.file-too-large` for it); more than 10,000 YAML files is an error.
 *
 * Rejects with GitTreeError: `RefNotFound` (message names the ref), `PathNotFound` (`path` absent at that revision
 * or not a folder), `TooManyFiles`.
 */
export async function readGitSnapshot(opts: ReadGitSnapshotOptions): Promise<Snapshot> {
  const gitdir = gitdirOf(opts.dir)
  const cache = opts.cache ?? {}
  const maxFileBytes = opts.limits?.maxFileBytes ?? GIT_SNAPSHOT_LIMITS.maxFileBytes
  const maxFiles = opts.limits?.maxFiles ?? GIT_SNAPSHOT_LIMITS.maxFiles
  const sha = await resolveCommit({ dir: opts.dir, ref: opts.ref, cache })
  const root = normalizeTreePath(opts.path)
  const prefix = root === '' ? '' : `${root}/`
  const files = new Map<string, Uint8Array>()
  const filter = await readSnapshotFilter(gitdir, sha, prefix, cache, maxFileBytes)
  let count = 0 // counted before any await: the walk visits siblings concurrently
  let rootSeen = root === ''
  let rootIsTree = root === ''

  await git.walk({
    fs,
    gitdir,
    cache,
    trees: [git.TREE({ ref: sha })],
    map: async (filepath, [entry]) => {
      if (!entry || filepath === '.') return true
      const type = await entry.type()
      if (filepath === root) {
        rootSeen = true
        rootIsTree = type === 'tree'
        return type === 'tree' ? true : null
      }
      if (type === 'tree') {
        // Descend only into folders that lead to `path` or lie under it, and are not ignored.
        if (filepath.startsWith(prefix)) return filter.skipsFolder(filepath.slice(prefix.length)) ? null : true
        return root.startsWith(`${filepath}/`) ? true : null
      }
      if (type !== 'blob' || !filepath.startsWith(prefix) || !isYaml(filepath)) return undefined
      if ((await entry.mode()) === 0o120000) return undefined // symlink
      const rel = filepath.slice(prefix.length)
      if (filter.skipsFile(rel)) return undefined
      if (++count > maxFiles)
        throw new GitTreeError(
          GitTreeErrorCode.TooManyFiles,
          `more than ${maxFiles} YAML files under ${root || '/'} at ${opts.ref}`,
          opts.ref,
          root,
        )
      const content = (await entry.content()) ?? new Uint8Array()
      // As the folder source: an oversized file is handed on cut at the limit + 1 byte, so the parser reports it
      // (parse.file-too-large, with its path) instead of the whole revision failing to read.
      files.set(rel, content.byteLength > maxFileBytes ? content.subarray(0, maxFileBytes + 1) : content)
      return undefined
    },
    reduce: async () => undefined,
  })

  if (!rootSeen || !rootIsTree)
    throw new GitTreeError(
      GitTreeErrorCode.PathNotFound,
      `path "${root}" is not a folder at ${opts.ref} in ${opts.dir}`,
      opts.ref,
      root,
    )
  // Walk order is tree order; hand out files sorted bytewise by path so every source agrees.
  const sorted = new Map([...files.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  return { revision: gitRevision(opts.ref, sha), files: sorted }
}
