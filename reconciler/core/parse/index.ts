import { Composer, type Document, isMap, isScalar, isSeq, LineCounter, type Node, Parser, type ScalarTag } from 'yaml'
import type { Violation } from '../../../schemas/violation.js'
import type { ParsedDocument, Position, Snapshot } from '../model.js'
import { joinPath } from '../validate/locate.js'
import { parseBlockSubset } from './block-yaml.js'
import { bytePosition, estimateNesting, firstInvalidUtf8, utf8Length } from './guards.js'

/** Limits that keep hostile input from crashing or hanging the parser (docs/design.md §1, issue 2 item 5). */
export const ParseLimits = {
  maxFileBytes: 1024 * 1024,
  maxDocuments: 10_000,
  maxDepth: 64,
  maxAliasCount: 100,
  /** Files whose estimated nesting exceeds this are refused before the YAML parser runs. */
  maxEstimatedDepth: 256,
} as const
export type ParseLimits = { [K in keyof typeof ParseLimits]: number }

/** Stable rule ids of parse violations. */
export const ParseRule = {
  FileTooLarge: 'parse.file-too-large',
  InvalidUtf8: 'parse.invalid-utf8',
  TooManyDocuments: 'parse.too-many-documents',
  TooDeep: 'parse.too-deep',
  AliasLimit: 'parse.alias-limit',
  Syntax: 'parse.yaml-syntax',
  DuplicateKey: 'parse.duplicate-key',
  NotAnObject: 'parse.not-an-object',
} as const

const YAML11_TRUE = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON'])
/** The plain scalars YAML 1.1 reads as booleans (block-yaml.ts resolves the same set). */
export const YAML11_BOOL = /^(?:[yY]|[yY]es|YES|[nN]|[nN]o|NO|[tT]rue|TRUE|[fF]alse|FALSE|[oO]n|ON|[oO]ff|OFF)$/
/**
 * Kuma turns YAML into JSON with go-yaml v2 (sigs.k8s.io/yaml, YAML 1.1), where `yes`/`no`/`on`/`off`/`y`/`n`
 * are booleans; the `yaml` library's core schema (1.2) reads them as strings. This tag replaces the core
 * boolean so both agree (quoted `"yes"` stays a string, as in go-yaml).
 */
const yaml11Bool: ScalarTag = {
  identify: (v) => typeof v === 'boolean',
  default: true,
  tag: 'tag:yaml.org,2002:bool',
  test: YAML11_BOOL,
  resolve: (s) => YAML11_TRUE.has(s),
}

/** True for the files that belong to a snapshot: `*.yaml` and `*.yml`. */
export const isYamlFile = (path: string): boolean => /\.ya?ml$/i.test(path)

export interface ParseOptions {
  /**
   * Try the fast parser of the plain block subset of YAML first (validate/block-yaml.ts; same result, and a
   * file outside the subset falls back to the `yaml` library). Default true; false always uses `yaml`.
   */
  blockSubset?: boolean
}

export interface ParseResult {
  documents: ParsedDocument[]
  violations: Violation[]
}

/**
 * Parses every `*.yaml`/`*.yml` file of a snapshot (files in path order, documents in file order). Each
 * non-empty document becomes a ParsedDocument with its value and the position of every field. Problems
 * (YAML syntax with position, duplicate keys, non-object documents, and the hostile-input limits of
 * `ParseLimits`: size, document count, alias expansion, nesting depth, invalid UTF-8) come back as
 * violations with `parse.*` rule ids. Never throws; time is linear in the input size. Pure.
 */
export function parseSnapshot(
  snapshot: Snapshot,
  limits: ParseLimits = ParseLimits,
  opts: ParseOptions = {},
): ParseResult {
  const out: ParseResult = { documents: [], violations: [] }
  const files = [...snapshot.files.keys()].filter(isYamlFile).sort()
  const fast = opts.blockSubset ?? true
  for (const file of files) {
    try {
      parseFile(file, snapshot.files.get(file)!, limits, fast, out)
    } catch (err) {
      // Defensive: the yaml library should not throw here; if it does, report instead of crashing.
      out.violations.push(fileViolation(file, { line: 1, column: 1 }, ParseRule.Syntax, errorText(err)))
    }
  }
  return out
}

const decoder = new TextDecoder('utf-8', { fatal: true })

function parseFile(
  file: string,
  content: Uint8Array | string,
  limits: ParseLimits,
  fast: boolean,
  out: ParseResult,
): void {
  const size = typeof content === 'string' ? utf8Length(content, limits.maxFileBytes) : content.byteLength
  if (size > limits.maxFileBytes) {
    const msg = `file is larger than ${limits.maxFileBytes} bytes`
    out.violations.push(fileViolation(file, { line: 1, column: 1 }, ParseRule.FileTooLarge, msg))
    return
  }
  let text: string
  if (typeof content === 'string') text = content.charCodeAt(0) === 0xfeff ? content.slice(1) : content
  else {
    try {
      text = decoder.decode(content)
    } catch {
      const at = bytePosition(content, Math.max(0, firstInvalidUtf8(content)))
      out.violations.push(fileViolation(file, at, ParseRule.InvalidUtf8, 'file is not valid UTF-8'))
      return
    }
  }
  // The fast path is linear and gives up beyond a small depth, so the nesting guard is only for the yaml path.
  const subset = fast ? parseBlockSubset(text, file, limits.maxDocuments) : undefined
  if (subset) {
    for (const doc of subset) out.documents.push(doc)
    return
  }
  if (estimateNesting(text) > limits.maxEstimatedDepth) {
    const msg = `nesting is deeper than ${limits.maxDepth} levels`
    out.violations.push(fileViolation(file, { line: 1, column: 1 }, ParseRule.TooDeep, msg))
    return
  }
  const lines = new LineCounter()
  const parser = new Parser(lines.addNewLine)
  const composer = new Composer({
    uniqueKeys: true,
    logLevel: 'error',
    customTags: (tags) => tags.map((t) => (typeof t === 'object' && t.tag === yaml11Bool.tag ? yaml11Bool : t)),
  })
  let index = 0
  const take = (doc: Document.Parsed): boolean => {
    if (index >= limits.maxDocuments) {
      const at = position(lines, doc.range[0])
      const msg = `file has more than ${limits.maxDocuments} documents`
      out.violations.push(fileViolation(file, at, ParseRule.TooManyDocuments, msg))
      return false
    }
    addDocument(file, index++, doc, lines, limits, out)
    return true
  }
  for (const token of parser.parse(text)) {
    for (const doc of composer.next(token)) if (!take(doc)) return
  }
  for (const doc of composer.end()) if (!take(doc)) return
}

function addDocument(
  file: string,
  index: number,
  doc: Document.Parsed,
  lines: LineCounter,
  limits: ParseLimits,
  out: ParseResult,
): void {
  const contents = doc.contents as Node | null
  const location = { file, ...position(lines, contents?.range?.[0] ?? doc.range[0]) }
  const who = identity(contents)
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const rule = e.code === 'DUPLICATE_KEY' ? ParseRule.DuplicateKey : ParseRule.Syntax
      const message = e.code === 'DUPLICATE_KEY' ? `duplicate key: ${firstLine(e.message)}` : firstLine(e.message)
      out.violations.push({ file, ...position(lines, e.pos[0]), ...who, path: '', rule, message })
    }
    return
  }
  if (contents === null || (isScalar(contents) && contents.value === null && !contents.tag)) return // empty
  if (!isMap(contents)) {
    const message = `a resource must be a mapping with "type" and "name", got a ${isSeq(contents) ? 'sequence' : 'scalar'}`
    out.violations.push({ ...location, ...who, path: '', rule: ParseRule.NotAnObject, message })
    return
  }
  const positions = new Map<string, Position>()
  const keyPositions = new Map<string, Position>()
  const deep = walk(contents, '', undefined, 1, limits.maxDepth, lines, positions, keyPositions)
  if (deep) {
    const message = `nesting is deeper than ${limits.maxDepth} levels`
    out.violations.push({ file, ...position(lines, deep), ...who, path: '', rule: ParseRule.TooDeep, message })
    return
  }
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: limits.maxAliasCount })
  } catch (err) {
    const alias = err instanceof ReferenceError || /alias/i.test(errorText(err))
    const rule = alias ? ParseRule.AliasLimit : ParseRule.Syntax
    const message = alias ? `too many alias expansions (more than ${limits.maxAliasCount})` : errorText(err)
    out.violations.push({ ...location, ...who, path: '', rule, message })
    return
  }
  out.documents.push({ file, index, location, value, positions, keyPositions })
}

/**
 * Records the position of every value (and key) under `node`. Returns the offset of a node deeper than
 * `maxDepth`, or 0. Aliases are not followed (their expansion is bounded by maxAliasCount in toJS).
 */
function walk(
  node: unknown,
  path: string,
  field: string | undefined,
  depth: number,
  maxDepth: number,
  lines: LineCounter,
  positions: Map<string, Position>,
  keyPositions: Map<string, Position>,
): number {
  const range = (node as Node | null)?.range
  if (range) positions.set(path, position(lines, range[0]))
  if (depth > maxDepth) return range?.[0] ?? 1
  if (isMap(node)) {
    for (const pair of node.items) {
      if (!isScalar(pair.key)) {
        // A complex key (`? [a, b]`): no resource field has one, and stringifying it for a path takes
        // exponential time in the yaml library on nested `? ? ?` keys. Its entry gets no positions (locate
        // falls back to the mapping); key and value still count for the depth limit.
        const deep =
          walk(pair.key, path, undefined, depth + 1, maxDepth, lines, new Map(), new Map()) ||
          walk(pair.value, path, undefined, depth + 1, maxDepth, lines, new Map(), new Map())
        if (deep) return deep
        continue
      }
      const key = String(pair.key.value)
      const child = joinPath(path, key, field)
      const keyRange = (pair.key as Node | null)?.range
      if (keyRange) {
        keyPositions.set(child, position(lines, keyRange[0]))
        positions.set(child, position(lines, keyRange[0]))
      }
      const deep = walk(pair.value, child, key, depth + 1, maxDepth, lines, positions, keyPositions)
      if (deep) return deep
    }
  } else if (isSeq(node)) {
    for (let i = 0; i < node.items.length; i++) {
      const deep = walk(node.items[i], `${path}[${i}]`, field, depth + 1, maxDepth, lines, positions, keyPositions)
      if (deep) return deep
    }
  }
  return 0
}

function identity(contents: unknown): { kind: string; name: string } {
  if (!isMap(contents)) return { kind: '', name: '' }
  const type = contents.get('type')
  const name = contents.get('name')
  return { kind: typeof type === 'string' ? type : '', name: typeof name === 'string' ? name : '' }
}

function position(lines: LineCounter, offset: number): Position {
  const p = lines.linePos(Math.max(0, offset))
  return { line: p.line, column: p.col }
}

function fileViolation(file: string, at: Position, rule: string, message: string): Violation {
  return { file, line: at.line, column: at.column, kind: '', name: '', path: '', rule, message }
}

const firstLine = (s: string): string => s.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')
const errorText = (err: unknown): string => firstLine(err instanceof Error ? err.message : String(err))
