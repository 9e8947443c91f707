/**
 * The revision string: what a table, an event and the status say they were built from
 * (docs/decisions/003-revision-format.md). The one module that writes and reads it:
 *
 * - `<ref>@sha1:<40 hex>`: a commit of a SHA-1 Git repository (`main@sha1:3f2a…`);
 * - `<ref>@sha256:<64 hex>`: a commit of a SHA-256 Git repository;
 * - `path:<folder>`: a snapshot read from a folder (`zonegate compile`/`validate` on a directory).
 *
 * `<ref>` is the branch (the reconciler) or the ref as the user gave it (`zonegate diff`). Git ref names never
 * contain `:` (git check-ref-format) but may contain `@`, so a Git revision is read from its end, and a string
 * starting with `path:` is always a folder.
 */

export const HashAlgorithm = { Sha1: 'sha1', Sha256: 'sha256' } as const
export type HashAlgorithm = (typeof HashAlgorithm)[keyof typeof HashAlgorithm]

export type Revision =
  | { kind: 'git'; ref: string; algorithm: HashAlgorithm; sha: string }
  | { kind: 'folder'; path: string }

const HEX_LENGTH: Record<HashAlgorithm, number> = { sha1: 40, sha256: 64 }
const GIT = /@(sha1|sha256):([0-9a-f]+)$/
const FOLDER = 'path:'

/** The hash algorithm of a commit id: `sha256` for 64 hex digits, `sha1` for anything else. Pure. */
export function algorithmOf(sha: string): HashAlgorithm {
  return sha.length === HEX_LENGTH.sha256 && /^[0-9a-f]+$/.test(sha) ? HashAlgorithm.Sha256 : HashAlgorithm.Sha1
}

/** The string of a revision (see the module comment). Pure. */
export function formatRevision(r: Revision): string {
  return r.kind === 'folder' ? `${FOLDER}${r.path}` : `${r.ref}@${r.algorithm}:${r.sha}`
}

/**
 * The revision of commit `sha` on `ref`: `<ref>@sha1:<sha>`, or `<ref>@sha256:<sha>` when `sha` is 64 hex digits
 * (a SHA-256 repository). The sha is written as given (never checked here: the pass never throws on it). Pure.
 */
export function gitRevision(ref: string, sha: string): string {
  return formatRevision({ kind: 'git', ref, algorithm: algorithmOf(sha), sha })
}

/** The revision of a folder snapshot: `path:<folder>`. Pure. */
export function folderRevision(path: string): string {
  return formatRevision({ kind: 'folder', path })
}

/**
 * Reads a revision string: a folder revision when it starts with `path:`, a Git revision when it ends in
 * `@sha1:<40 hex>` or `@sha256:<64 hex>` (lowercase); undefined for anything else (a truncated or foreign
 * string, a sha of the wrong length for its algorithm). `formatRevision(parseRevision(s)) === s` for every string
 * it accepts. Pure.
 */
export function parseRevision(revision: string): Revision | undefined {
  if (revision.startsWith(FOLDER)) return { kind: 'folder', path: revision.slice(FOLDER.length) }
  const m = GIT.exec(revision)
  if (!m) return undefined
  const algorithm = m[1] as HashAlgorithm
  const sha = m[2] as string
  return sha.length === HEX_LENGTH[algorithm]
    ? { kind: 'git', ref: revision.slice(0, m.index), algorithm, sha }
    : undefined
}

/** The commit id of a Git revision; undefined for a folder revision, an unreadable string or none. Pure. */
export function shaOfRevision(revision: string | undefined): string | undefined {
  const r = revision === undefined ? undefined : parseRevision(revision)
  return r?.kind === 'git' ? r.sha : undefined
}

/** The commit an event belongs to: `sha` on commit events, else the commit of its `revision`. Pure. */
export function shaOfEvent(event: { revision: string; sha?: unknown }): string | undefined {
  return typeof event.sha === 'string' ? event.sha : shaOfRevision(event.revision)
}
