/**
 * Cheap pre-checks run on a file before the YAML parser sees it, so hostile input is refused in linear time
 * (the yaml library is slow, and can exhaust memory, on very deep nesting). Pure.
 */

/** Byte length of a string once UTF-8 encoded, stopping early once it exceeds `limit`. */
export function utf8Length(text: string, limit = Number.POSITIVE_INFINITY): number {
  let n = 0
  for (let i = 0; i < text.length && n <= limit; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4
        i++
      } else n += 3
    } else n += 3
  }
  return n
}

/** Offset of the first byte that is not part of a valid UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0
  while (i < bytes.length) {
    const b = bytes[i]!
    let need = 0
    let min = 0
    if (b < 0x80) {
      i++
      continue
    } else if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80]
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800]
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000]
    else return i
    let cp = b & (0x3f >> need)
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k]
      if (c === undefined || (c & 0xc0) !== 0x80) return i
      cp = (cp << 6) | (c & 0x3f)
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i
    i += need + 1
  }
  return -1
}

/** 1-based line and column (in bytes) of a byte offset. */
export function bytePosition(bytes: Uint8Array, offset: number): { line: number; column: number } {
  let line = 1
  let lineStart = 0
  for (let i = 0; i < offset && i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      line++
      lineStart = i + 1
    }
  }
  return { line, column: offset - lineStart + 1 }
}

const BLOCK_SCALAR_HEADER = /(?:^|[ \t])[|>][-+0-9]*[ \t]*(?:#.*)?\r?$/

/**
 * An estimate of the nesting depth of a YAML text (block indentation levels + compact `- ` entries + flow
 * brackets), computed in one pass without parsing. It may over- or under-estimate odd layouts; it only guards
 * the parser against pathological depth. The exact depth is checked on the parsed tree.
 */
export function estimateNesting(text: string): number {
  let max = 0
  let flow = 0
  let quote = ''
  const indents: number[] = []
  let blockScalarIndent = -1
  let i = 0
  const n = text.length
  while (i < n) {
    let j = i
    while (j < n && text.charCodeAt(j) === 32) j++
    let end = text.indexOf('\n', j)
    if (end < 0) end = n
    const indent = j - i
    const blank = j >= end || text[j] === '#' || text[j] === '\r'
    if (blockScalarIndent >= 0 && (blank || indent > blockScalarIndent)) {
      i = end + 1
      continue
    }
    blockScalarIndent = -1
    if (!blank && flow === 0 && quote === '') {
      while (indents.length > 0 && indents[indents.length - 1]! >= indent) indents.pop()
      indents.push(indent)
    }
    let k = j
    let compact = 0
    if (quote === '' && flow === 0) {
      while (k + 1 < end && (text[k] === '-' || text[k] === '?') && text[k + 1] === ' ') {
        compact++
        k += 2
        while (k < end && text[k] === ' ') k++
      }
    }
    let prev = ' '
    for (let p = k; p < end; p++) {
      const c = text[p]!
      if (quote !== '') {
        if (c === '\\' && quote === '"') p++
        else if (c === quote) quote = ''
        prev = c
        continue
      }
      if (c === '#' && (prev === ' ' || prev === '\t')) break
      if ((c === '"' || c === "'") && ' \t[{,:'.includes(prev)) quote = c
      else if (c === '[' || c === '{') {
        flow++
        if (indents.length + compact + flow > max) max = indents.length + compact + flow
      } else if ((c === ']' || c === '}') && flow > 0) flow--
      prev = c
    }
    if (indents.length + compact + flow > max) max = indents.length + compact + flow
    if (flow === 0 && quote === '' && BLOCK_SCALAR_HEADER.test(text.slice(k, end))) blockScalarIndent = indent
    i = end + 1
  }
  return max
}
