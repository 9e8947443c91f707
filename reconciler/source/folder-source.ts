import type { Dirent } from 'node:fs'
import { lstat, open, readdir, readFile, realpath, stat } from 'node:fs/promises'
import { basename, join, relative, sep } from 'node:path'
import { folderRevision } from '../../schemas/revision.js'
import { isDataFile } from '../core/data-source.js'
import { ReconcileError } from '../core/errors.js'
import type { Snapshot } from '../core/model.js'
import { isYamlFile, ParseLimits } from '../core/parse/index.js'
import { createSnapshotFilter, IGNORE_FILE } from '../core/snapshot-filter.js'

/** Limits of a folder snapshot. Files over `maxFileBytes` are read only that far (+1 byte) so the parser reports them. */
export const FolderLimits = { maxFiles: 10_000, maxFileBytes: ParseLimits.maxFileBytes } as const

export const FolderSourceCode = {
  NotFound: 'SourceNotFound',
  NotYaml: 'SourceNotYaml',
  SymlinkEscapes: 'SourceSymlinkEscapes',
  TooManyFiles: 'SourceTooManyFiles',
  ReadFailed: 'SourceReadFailed',
} as const
export type FolderSourceCode = (typeof FolderSourceCode)[keyof typeof FolderSourceCode]

/** The folder (or file) cannot be turned into a snapshot; `path` is the offending entry. */
export class FolderSourceError extends ReconcileError {
  constructor(
    readonly code: FolderSourceCode,
    readonly path: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }

  override data(): Record<string, unknown> {
    return { path: this.path }
  }
}

/**
 * Reads a folder (every `*.yaml`/`*.yml` below it, recursively, and the data files `file` data sources may read:
 * `*.pem`, `*.crt`, `*.cert`, `*.key`; keys are posix paths relative to the folder) or a single YAML file (key =
 * its base name) into a Snapshot with revision `path:<path>`.
 * Dot-folders and what the folder's `.zonegateignore` names are skipped (core/snapshot-filter.ts).
 * Symlinks are followed only while they stay inside the folder. Throws FolderSourceError: NotFound,
 * NotYaml (a single file that is not YAML), SymlinkEscapes, TooManyFiles (> 10,000), ReadFailed.
 * Files larger than 1 MiB are read only up to the limit + 1 byte; the parser then reports them.
 */
export async function readFolderSnapshot(path: string): Promise<Snapshot> {
  const files = new Map<string, Uint8Array>()
  const info = await stat(path).catch((err: unknown) => {
    throw new FolderSourceError(FolderSourceCode.NotFound, path, `${path}: no such file or directory`, { cause: err })
  })
  if (info.isFile()) {
    if (!isYamlFile(path)) throw new FolderSourceError(FolderSourceCode.NotYaml, path, `${path}: not a .yaml/.yml file`)
    files.set(basename(path), await readCapped(path))
    return { revision: folderRevision(path), files }
  }
  const root = await realpath(path)
  const ignoreText = await readFile(join(root, IGNORE_FILE), 'utf8').catch(() => undefined)
  const filter = createSnapshotFilter(ignoreText?.slice(0, FolderLimits.maxFileBytes))
  const visited = new Set<string>([root])
  const walk = async (dir: string, rel: string): Promise<void> => {
    let entries: Dirent[]
    try {
      entries = await readdir(dir, { withFileTypes: true })
    } catch (err) {
      throw new FolderSourceError(FolderSourceCode.ReadFailed, rel || '.', `${rel || path}: cannot read folder`, {
        cause: err,
      })
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const entry of entries) {
      const full = join(dir, entry.name)
      const relPath = rel ? `${rel}/${entry.name}` : entry.name
      let isDir = entry.isDirectory()
      let isFile = entry.isFile()
      if (entry.isSymbolicLink()) {
        const target = await realpath(full).catch(() => undefined)
        if (target === undefined) continue // dangling link: not part of the snapshot
        const inside = target === root || target.startsWith(root + sep)
        const st = await lstat(target)
        isDir = st.isDirectory()
        isFile = st.isFile()
        if (!inside && (isDir || isYamlFile(entry.name) || isDataFile(entry.name)))
          throw new FolderSourceError(
            FolderSourceCode.SymlinkEscapes,
            relPath,
            `${relPath}: symlink leaves the folder (points to ${relative(root, target)})`,
          )
        if (isDir) {
          if (visited.has(target)) continue // cycle or second route to a folder already read
          visited.add(target)
        }
      }
      if (isDir) {
        if (!filter.skipsFolder(relPath)) await walk(full, relPath)
      } else if (isFile && (isYamlFile(entry.name) || isDataFile(entry.name)) && !filter.skipsFile(relPath)) {
        if (files.size >= FolderLimits.maxFiles)
          throw new FolderSourceError(
            FolderSourceCode.TooManyFiles,
            relPath,
            `${path}: more than ${FolderLimits.maxFiles} YAML files`,
          )
        files.set(relPath, await readCapped(full))
      }
    }
  }
  await walk(root, '')
  return { revision: folderRevision(path), files }
}

/** Reads at most maxFileBytes + 1 bytes: enough for the parser to see the file is too large. */
async function readCapped(file: string): Promise<Uint8Array> {
  let handle: Awaited<ReturnType<typeof open>> | undefined
  try {
    handle = await open(file, 'r')
    const size = (await handle.stat()).size
    const buf = new Uint8Array(Math.min(size, FolderLimits.maxFileBytes + 1))
    let off = 0
    while (off < buf.length) {
      const { bytesRead } = await handle.read(buf, off, buf.length - off, off)
      if (bytesRead === 0) break
      off += bytesRead
    }
    return off === buf.length ? buf : buf.subarray(0, off)
  } catch (err) {
    throw new FolderSourceError(FolderSourceCode.ReadFailed, file, `${file}: cannot read file`, { cause: err })
  } finally {
    await handle?.close()
  }
}
