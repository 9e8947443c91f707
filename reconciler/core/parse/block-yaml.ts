import type { ParsedDocument, Position, SourceLocation } from '../model.js'
import { joinPath } from '../validate/locate.js'

/**
 * A fast parser for the plain block subset of YAML that resource files are written in: block mappings and
 * block sequences (including compact `- key: v` mappings, `- - x` sequences, and sequences at their parent key's
 * indentation),
 * plain scalars of printable ASCII, and one-line quoted scalars without escapes, separated by `---` lines.
 * It is a fast path in front of the `yaml` library, not a replacement: anything outside that subset (flow
 * collections, anchors/aliases, tags, block scalars, multi-line scalars, empty values, directives, tabs, CR,
 * control or non-ASCII characters outside comments, duplicate keys, keys that resolve to non-strings, odd
 * indentation, ...) makes it give up on the whole file, and the caller parses the file with `yaml`.
 *
 * For text inside the subset the result is the same as `yaml` 2's (YAML 1.2 core schema, `toJS`) and as
 * parse.ts's position walk: same documents and indexes, values, `positions`, `keyPositions` and location
 * (block-yaml.test.ts checks this against the `yaml` path). It never reports violations. Linear time. Pure.
 */
export function parseBlockSubset(text: string, file: string, maxDocuments: number): ParsedDocument[] | undefined {
  if (UNSUPPORTED_CHARS.test(text)) return undefined
  try {
    return splitDocuments(text, maxDocuments).map(({ index, lines }) => {
      const { value, root } = new BlockParser(text, lines, false).parse()
      const location = { file, line: root.line, column: root.column }
      return new BlockDocument(file, index, location, value, text, lines)
    })
  } catch (err) {
    if (err === BAIL) return undefined
    throw err
  }
}

/** Tabs, CR, control characters and the characters some parsers treat as line breaks or BOMs. */
const UNSUPPORTED_CHARS = /[\x00-\x09\x0b-\x1f\x7f\x85\u2028\u2029\ufeff]/
/** Deeper documents go to the `yaml` path, which enforces ParseLimits.maxDepth. */
const MAX_DEPTH = 32
const MAX_KEY_LENGTH = 512
/** Plain keys the schema resolves to null or booleans (their JS key is not their text), YAML 1.1 booleans included. */
const NON_STRING_KEY =
  /^(?:[Nn]ull|NULL|[yY]|[yY]es|YES|[nN]|[nN]o|NO|[tT]rue|TRUE|[fF]alse|FALSE|[oO]n|ON|[oO]ff|OFF)$/
const BAIL = Symbol('block-yaml: outside the subset')

const SPACE = 32
const HASH = 35
const DASH = 45
const COLON = 58
const DQUOTE = 34
const SQUOTE = 39
const NL = 10

const bail = (): never => {
  throw BAIL
}

const isKeyStart = (c: number): boolean => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95
const isKeyChar = (c: number): boolean => isKeyStart(c) || (c >= 48 && c <= 57) || c === 46 || c === 47 || c === DASH
/** First characters of a plain scalar we accept: letters, digits, `_`, `.`, `/` (no YAML indicator). */
const isPlainStart = (c: number): boolean => isKeyChar(c) && c !== DASH

/** The content lines (not blank, not comment-only) of one document: start and end offsets, indentation, number. */
interface Lines {
  starts: number[]
  ends: number[]
  indents: number[]
  lineNos: number[]
}

const noLines = (): Lines => ({ starts: [], ends: [], indents: [], lineNos: [] })

/** Splits a file into documents at `---` lines, with `yaml`'s document indexes (empty documents count). */
function splitDocuments(text: string, maxDocuments: number): { index: number; lines: Lines }[] {
  const out: { index: number; lines: Lines }[] = []
  let lines = noLines()
  let index = 0
  let sawSeparator = false
  let lineNo = 0
  let at = 0
  const flush = () => {
    if (lines.starts.length > 0) out.push({ index, lines })
    if (lines.starts.length > 0 || sawSeparator) index++
    if (index > maxDocuments) bail()
    lines = noLines()
  }
  while (at < text.length) {
    lineNo++
    let end = text.indexOf('\n', at)
    if (end < 0) end = text.length
    let i = at
    while (i < end && text.charCodeAt(i) === SPACE) i++
    const c = text.charCodeAt(i)
    if (i === at && c === DASH && text.startsWith('---', at)) {
      for (let j = at + 3; j < end; j++) if (text.charCodeAt(j) !== SPACE) bail()
      flush()
      sawSeparator = true
    } else if (i === at && (c === 46 || c === 37) && i < end) {
      bail() // `...` document end or a `%` directive
    } else if (i < end && c !== HASH) {
      lines.starts.push(at)
      lines.ends.push(end)
      lines.indents.push(i - at)
      lines.lineNos.push(lineNo)
    }
    at = end + 1
  }
  flush()
  return out
}

/**
 * A document parsed by the fast path. Its `positions` and `keyPositions` are built on first use, by parsing
 * its lines again with positions on: valid documents never need them, and they are most of the allocation.
 */
class BlockDocument implements ParsedDocument {
  readonly #text: string
  readonly #lines: Lines
  #maps: { positions: Map<string, Position>; keyPositions: Map<string, Position> } | undefined

  constructor(
    readonly file: string,
    readonly index: number,
    readonly location: SourceLocation,
    readonly value: unknown,
    text: string,
    lines: Lines,
  ) {
    this.#text = text
    this.#lines = lines
  }

  get positions(): Map<string, Position> {
    return this.#fields().positions
  }

  get keyPositions(): Map<string, Position> {
    return this.#fields().keyPositions
  }

  #fields() {
    if (this.#maps === undefined) {
      const parser = new BlockParser(this.#text, this.#lines, true)
      parser.parse()
      this.#maps = { positions: parser.positions, keyPositions: parser.keyPositions }
    }
    return this.#maps
  }
}

class BlockParser {
  private readonly starts: number[]
  private readonly ends: number[]
  private readonly indents: number[]
  private readonly lineNos: number[]
  private k = 0
  readonly positions = new Map<string, Position>()
  readonly keyPositions = new Map<string, Position>()

  /** With `record` false, no paths or positions are built (only the value). */
  constructor(
    private readonly text: string,
    lines: Lines,
    private readonly record: boolean,
  ) {
    this.starts = lines.starts
    this.ends = lines.ends
    this.indents = lines.indents
    this.lineNos = lines.lineNos
  }

  /** Parses the document: its value and the position of its root mapping. */
  parse(): { value: unknown; root: Position } {
    if (this.indents[0] !== 0 || this.keyEnd(this.starts[0]!) < 0) bail() // not a mapping at column 1
    const root = this.pos(0, 0)
    if (this.record) this.positions.set('', root)
    const value = this.map(0, '', undefined, 1)
    if (this.k < this.starts.length) bail()
    return { value, root }
  }

  private pos(k: number, col: number): Position {
    return { line: this.lineNos[k]!, column: col + 1 }
  }

  private lineEnd(k: number): number {
    return this.ends[k]!
  }

  /** If a plain key followed by `:` and a space or the line end starts at `from`, the offset of the colon; else -1. */
  private keyEnd(from: number): number {
    const { text } = this
    if (!isKeyStart(text.charCodeAt(from))) return -1
    let i = from + 1
    while (isKeyChar(text.charCodeAt(i))) i++
    if (text.charCodeAt(i) !== COLON) return -1
    const after = text.charCodeAt(i + 1)
    return after === SPACE || after === NL || Number.isNaN(after) ? i : -1
  }

  /** True when the line starts, at column `col`, a block sequence entry (`-` then a space or the line end). */
  private isEntry(k: number, col: number): boolean {
    const at = this.starts[k]! + col
    const after = this.text.charCodeAt(at + 1)
    return this.text.charCodeAt(at) === DASH && (after === SPACE || after === NL || Number.isNaN(after))
  }

  /** A block mapping whose entries start at column `n`; the first one on line `k` (maybe after `- `). */
  private map(n: number, path: string, field: string | undefined, depth: number): Record<string, unknown> {
    if (depth > MAX_DEPTH) bail()
    const { text } = this
    const obj: Record<string, unknown> = {}
    for (;;) {
      const k = this.k
      const from = this.starts[k]! + n
      const colon = this.keyEnd(from)
      if (colon < 0 || colon - from > MAX_KEY_LENGTH) bail()
      const key = text.slice(from, colon)
      if (NON_STRING_KEY.test(key) || key === '__proto__' || Object.hasOwn(obj, key)) bail()
      const child = this.record ? joinPath(path, key, field) : ''
      if (this.record) {
        const keyAt = this.pos(k, n)
        this.keyPositions.set(child, keyAt)
        this.positions.set(child, keyAt)
      }
      let v = colon + 1
      const end = this.lineEnd(k)
      while (v < end && text.charCodeAt(v) === SPACE) v++
      if (v === end || text.charCodeAt(v) === HASH) {
        // The value is a block on the next lines: more indented, or a sequence at this indentation.
        this.k++
        if (this.k >= this.starts.length) bail()
        const m = this.indents[this.k]!
        if (m > n) obj[key] = this.block(m, child, key, depth + 1)
        else if (m === n && this.isEntry(this.k, n)) {
          if (this.record) this.positions.set(child, this.pos(this.k, n))
          obj[key] = this.seq(n, child, key, depth + 1)
        } else bail() // an empty (null) value
      } else {
        obj[key] = this.scalar(k, v - this.starts[k]!, end, child)
        this.k++
      }
      if (this.k >= this.starts.length) return obj
      const next = this.indents[this.k]!
      if (next < n) return obj
      if (next > n || this.isEntry(this.k, n)) bail()
    }
  }

  /** A block sequence whose `-` indicators are at column `n`, the first on line `k`. */
  private seq(n: number, path: string, field: string | undefined, depth: number): unknown[] {
    if (depth > MAX_DEPTH) bail()
    const { text } = this
    const arr: unknown[] = []
    for (;;) {
      const k = this.k
      const end = this.lineEnd(k)
      let c = n + 1
      while (this.starts[k]! + c < end && text.charCodeAt(this.starts[k]! + c) === SPACE) c++
      const at = this.starts[k]! + c
      if (at === end || text.charCodeAt(at) === HASH) bail()
      const item = this.record ? `${path}[${arr.length}]` : ''
      if (this.isEntry(k, c)) {
        if (this.record) this.positions.set(item, this.pos(k, c))
        arr.push(this.seq(c, item, field, depth + 1)) // a compact nested sequence: `- - x`
      } else if (this.keyEnd(at) >= 0) {
        if (this.record) this.positions.set(item, this.pos(k, c))
        arr.push(this.map(c, item, field, depth + 1))
      } else {
        arr.push(this.scalar(k, c, end, item))
        this.k++
        if (this.k < this.starts.length && this.indents[this.k]! > n) bail()
      }
      if (this.k >= this.starts.length) return arr
      const next = this.indents[this.k]!
      if (next < n) return arr
      if (next > n) bail()
      if (!this.isEntry(this.k, n)) return arr // the parent mapping continues at this indentation
    }
  }

  /** A block collection starting on line `k` at its indentation `m`. */
  private block(m: number, path: string, field: string, depth: number): unknown {
    if (this.record) this.positions.set(path, this.pos(this.k, m))
    if (this.isEntry(this.k, m)) return this.seq(m, path, field, depth)
    if (this.keyEnd(this.starts[this.k]! + m) < 0) bail() // a multi-line scalar or something else
    return this.map(m, path, field, depth)
  }

  /** A one-line scalar at column `col` of line `k` (the line ends at offset `end`). */
  private scalar(k: number, col: number, end: number, path: string): unknown {
    const { text } = this
    const from = this.starts[k]! + col
    if (this.record) this.positions.set(path, this.pos(k, col))
    const q = text.charCodeAt(from)
    if (q === DQUOTE || q === SQUOTE) {
      let i = from + 1
      while (i < end) {
        const c = text.charCodeAt(i)
        if (c === q) break
        if (c === 92 || c > 126) bail() // escapes and non-ASCII
        i++
      }
      if (i >= end) bail() // no closing quote on this line
      let j = i + 1
      while (j < end && text.charCodeAt(j) === SPACE) j++
      if (j < end && (j === i + 1 || text.charCodeAt(j) !== HASH)) bail()
      return text.slice(from + 1, i)
    }
    if (!isPlainStart(q)) bail()
    let last = from // offset of the last non-space character
    for (let i = from + 1; i < end; i++) {
      const c = text.charCodeAt(i)
      if (c === SPACE) {
        if (text.charCodeAt(i + 1) === HASH) break // a comment
        continue
      }
      if (c > 126 || (c === COLON && (i + 1 === end || text.charCodeAt(i + 1) === SPACE))) bail()
      last = i
    }
    return resolvePlain(text.slice(from, last + 1))
  }
}

const NULL = /^(?:~|[Nn]ull|NULL)$/
/** YAML 1.1 booleans, as Kuma's go-yaml v2 reads them (and parse.ts's boolean tag). */
const BOOL = /^(?:[yY]|[yY]es|YES|[nN]|[nN]o|NO|[tT]rue|TRUE|[fF]alse|FALSE|[oO]n|ON|[oO]ff|OFF)$/
const TRUE = /^(?:[yY]|[yY]es|YES|[tT]rue|TRUE|[oO]n|ON)$/
const INT = /^[-+]?[0-9]+$/
const OCT = /^0o[0-7]+$/
const HEX = /^0x[0-9a-fA-F]+$/
const NAN_INF = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/
const FLOAT_EXP = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/

/**
 * The value of a plain scalar under the YAML 1.2 core schema with YAML 1.1 booleans, exactly as parse.ts's `yaml`
 * path resolves it (tags in order: null, bool, octal/decimal/hex int, NaN/infinity, floats; else a string).
 */
export function resolvePlain(s: string): unknown {
  const c = s.charCodeAt(0)
  const numeric = (c >= 48 && c <= 57) || c === 46 || c === 43 || c === DASH
  if (!numeric) {
    if (NULL.test(s)) return null
    if (BOOL.test(s)) return TRUE.test(s)
    return s
  }
  if (OCT.test(s)) return Number.parseInt(s.substring(2), 8)
  if (INT.test(s)) return Number.parseInt(s, 10)
  if (HEX.test(s)) return Number.parseInt(s.substring(2), 16)
  if (NAN_INF.test(s)) {
    if (s.slice(-3).toLowerCase() === 'nan') return Number.NaN
    return s[0] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY
  }
  if (FLOAT_EXP.test(s) || FLOAT.test(s)) return Number.parseFloat(s)
  return s
}
