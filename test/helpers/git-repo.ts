import * as fs from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, sep } from 'node:path'
import git from 'isomorphic-git'

/**
 * Throwaway Git repositories for tests and benchmarks, written with isomorphic-git itself (no git CLI).
 * Commits are built straight from objects (blobs, trees, commit), so bare and non-bare repositories work the
 * same way and no working tree or index is involved: exactly what a reconciler reading the object store sees.
 *
 * ```ts
 * const repo = await createGitRepo({ files: { 'meshes/default.yaml': 'type: Mesh\nname: default\n' } })
 * const sha = await repo.commit({ 'zone-egresses/a.yaml': '...', 'old.yaml': null }, 'add egress, drop old')
 * ```
 */
export interface GitRepo {
  /** The path to pass as `--repo` (the working directory, or the git directory itself when bare). */
  dir: string
  /** The git directory (`<dir>/.git`, or `dir` when bare). */
  gitdir: string
  bare: boolean
  branch: string
  /** The files of the branch tip, path → text. */
  readonly files: ReadonlyMap<string, string>
  /**
   * Commits a change on `branch` (default the repo's branch): each entry writes a file (text) or deletes it
   * (`null`); other files stay. Returns the new commit's sha.
   */
  commit(changes: Record<string, string | null>, message?: string, opts?: { branch?: string }): Promise<string>
  /** Replaces every file with the given set (a full snapshot) and commits. Returns the sha. */
  commitAll(files: Record<string, string>, message?: string): Promise<string>
  /** The sha at the tip of a branch (default the repo's branch). */
  head(branch?: string): Promise<string>
  /** Deletes the repository from disk. */
  remove(): Promise<void>
}

export interface CreateGitRepoOptions {
  /** Where to create it (default a new temporary directory). */
  dir?: string
  bare?: boolean
  /** Default `main`. */
  branch?: string
  /** Files of a first commit (path → text). */
  files?: Record<string, string>
  /** Or: a folder whose files (recursively) become the first commit, optionally under `prefix/`. */
  fromFolder?: string
  prefix?: string
}

const AUTHOR = { name: 'zonegate test', email: 'test@zonegate.invalid' }

/** Reads every file under `folder` as path (posix, relative) → text. */
export async function readFolderFiles(folder: string, prefix = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.isFile()) {
        const rel = relative(folder, p).split(sep).join('/')
        out[prefix ? `${prefix}/${rel}` : rel] = await readFile(p, 'utf8')
      }
    }
  }
  await walk(folder)
  return out
}

/** Git's tree order: names compared bytewise, a tree's name as if it ended with `/`. */
function treeOrder(a: { path: string; type: string }, b: { path: string; type: string }): number {
  const ka = a.type === 'tree' ? `${a.path}/` : a.path
  const kb = b.type === 'tree' ? `${b.path}/` : b.path
  return ka < kb ? -1 : ka > kb ? 1 : 0
}

/** Creates a repository (init + optional first commit). */
export async function createGitRepo(opts: CreateGitRepoOptions = {}): Promise<GitRepo> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'zonegate-git-')))
  const bare = opts.bare ?? false
  const branch = opts.branch ?? 'main'
  const gitdir = bare ? dir : join(dir, '.git')
  await git.init({ fs, dir, gitdir, bare, defaultBranch: branch })

  // Per branch: path → text, plus a blob cache keyed by text so unchanged files are not rewritten.
  const state = new Map<string, Map<string, string>>()
  const blobs = new Map<string, string>()
  let counter = 0

  const writeTreeOf = async (files: Map<string, string>): Promise<string> => {
    interface Dir {
      files: Map<string, string>
      dirs: Map<string, Dir>
    }
    const root: Dir = { files: new Map(), dirs: new Map() }
    for (const [path, text] of files) {
      const parts = path.split('/')
      let d = root
      for (const part of parts.slice(0, -1)) {
        let next = d.dirs.get(part)
        if (!next) {
          next = { files: new Map(), dirs: new Map() }
          d.dirs.set(part, next)
        }
        d = next
      }
      d.files.set(parts[parts.length - 1] as string, text)
    }
    const write = async (d: Dir): Promise<string> => {
      const entries: { mode: string; path: string; oid: string; type: 'blob' | 'tree' }[] = []
      for (const [name, text] of d.files) {
        let oid = blobs.get(text)
        if (!oid) {
          oid = await git.writeBlob({ fs, gitdir, blob: Buffer.from(text, 'utf8') })
          blobs.set(text, oid)
        }
        entries.push({ mode: '100644', path: name, oid, type: 'blob' })
      }
      for (const [name, sub] of d.dirs)
        entries.push({ mode: '040000', path: name, oid: await write(sub), type: 'tree' })
      entries.sort(treeOrder)
      return git.writeTree({ fs, gitdir, tree: entries })
    }
    return write(root)
  }

  const filesOf = (b: string) => {
    let m = state.get(b)
    if (!m) {
      m = new Map()
      state.set(b, m)
    }
    return m
  }

  const commitFiles = async (b: string, message: string): Promise<string> => {
    const tree = await writeTreeOf(filesOf(b))
    const ref = `refs/heads/${b}`
    const parent = await git.resolveRef({ fs, gitdir, ref }).then(
      (oid) => [oid],
      () => [] as string[],
    )
    counter++
    return git.commit({
      fs,
      gitdir,
      ref,
      tree,
      parent,
      message: `${message}\n\n(test commit ${counter})`,
      author: AUTHOR,
    })
  }

  const repo: GitRepo = {
    dir,
    gitdir,
    bare,
    branch,
    get files() {
      return filesOf(branch)
    },
    async commit(changes, message = 'change', o = {}) {
      const b = o.branch ?? branch
      const files = filesOf(b)
      for (const [path, text] of Object.entries(changes)) {
        if (text === null) files.delete(path)
        else files.set(path, text)
      }
      return commitFiles(b, message)
    },
    async commitAll(all, message = 'replace all files') {
      const files = filesOf(branch)
      files.clear()
      for (const [path, text] of Object.entries(all)) files.set(path, text)
      return commitFiles(branch, message)
    },
    head: (b = branch) => git.resolveRef({ fs, gitdir, ref: `refs/heads/${b}` }),
    remove: () => rm(dir, { recursive: true, force: true }),
  }

  const first = opts.fromFolder ? await readFolderFiles(opts.fromFolder, opts.prefix) : opts.files
  if (first) await repo.commitAll(first, 'initial commit')
  return repo
}
