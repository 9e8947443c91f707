import ignore from 'ignore'

/**
 * Which files of a repository folder belong to a snapshot (docs/validation.md "Which files are read"). Like Flux's
 * `.sourceignore`: folders whose name starts with `.` (`.github/`, `.git/`, `.vscode/`) are skipped by default, and
 * an optional `.zonegateignore` at the snapshot root adds patterns in gitignore syntax (read with the `ignore`
 * library, the matcher eslint and many others use). Its patterns come after the default, so `!.kuma/` brings a
 * dot-folder back. Shared by the folder source and the Git source so both read the same files. Pure.
 */

/** Name of the ignore file, read at the snapshot root only. */
export const IGNORE_FILE = '.zonegateignore'

/** The default rules: every dot-folder, at any depth. */
export const DEFAULT_IGNORE_RULES: readonly string[] = ['.*/']

/** Tells whether a path (relative to the snapshot root, posix separators) is left out of the snapshot. */
export interface SnapshotFilter {
  /** True when the folder `dir` (no trailing slash) is skipped: nothing under it is read. */
  skipsFolder(dir: string): boolean
  /** True when the file is skipped (itself, or through one of its folders). */
  skipsFile(file: string): boolean
}

/**
 * Builds the filter from the text of `.zonegateignore` (undefined when there is none). Blank lines and `#`
 * comments are ignored as in gitignore. Never throws: the `ignore` library skips patterns it cannot use. Pure.
 */
export function createSnapshotFilter(ignoreText?: string): SnapshotFilter {
  const ig = ignore({ allowRelativePaths: true }).add([...DEFAULT_IGNORE_RULES])
  if (ignoreText) ig.add(ignoreText)
  return {
    skipsFolder: (dir) => dir !== '' && ig.ignores(`${dir}/`),
    skipsFile: (file) => ig.ignores(file),
  }
}
