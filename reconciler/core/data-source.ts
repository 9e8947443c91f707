import type { DataSource } from '../../schemas/resources.js'
import { isProtoBase64 } from './validate/tags.js'

/**
 * Kuma DataSources (`secret` | `file` | `inline` (base64) | `inlineString`) resolved against a snapshot. zonegate has
 * no secret store, so `secret` is refused; `file` is a path inside the repository snapshot (relative to the snapshot
 * root, no `..`, no absolute path), read by the sources from `*.pem`, `*.crt`, `*.cert` and `*.key` files of at most
 * DATA_FILE_MAX_BYTES. See docs/mtls.md. Pure.
 */

/** Largest data-source value (and data file) accepted: the table schema's PEM bound. */
export const DATA_FILE_MAX_BYTES = 64 * 1024

/** Files a `file` data source may point at (the sources read these next to the YAML). */
export const isDataFile = (path: string): boolean => /\.(pem|crt|cert|key)$/i.test(path)

/** The snapshot files a data source may read (keys relative to the snapshot root, posix separators). */
export type DataFiles = ReadonlyMap<string, Uint8Array | string>

export type DataSourceProblem = { path: string; message: string }

export type Resolved = { value: string } | { problems: DataSourceProblem[] }

const VARIANTS = ['secret', 'file', 'inline', 'inlineString'] as const
const decoder = new TextDecoder('utf-8', { fatal: true })

/** Kuma's `ValidateSource` message for a data source with no variant set. */
export const NO_SOURCE = 'data source has to be chosen. Available sources: secret, file, inline'
export const SECRET_UNSUPPORTED =
  'secret data sources are not supported by zonegate (it has no secret store), use file or inline'

/**
 * Checks and reads a DataSource. `problems` paths are relative to the data source (`''`, `inline`, `file`, …).
 * - no variant: Kuma's `data source has to be chosen. Available sources: secret, file, inline` (at `''`)
 * - an empty variant: `cannot be empty` at that variant (Kuma's ValidateSource)
 * - more than one variant: refused (protojson refuses a second member of a oneof)
 * - `secret`: refused (not supported, use file or inline)
 * - `inline` that is not base64: `illegal base64 data at input byte N` (protojson's error)
 * - `file`: must be a normalised relative path of a data file present in the snapshot, ≤ DATA_FILE_MAX_BYTES
 * The value is the UTF-8 text of the data (PEM). Pure.
 */
export function resolveDataSource(ds: DataSource | undefined, files: DataFiles | undefined): Resolved {
  const set = VARIANTS.filter((k) => ds?.[k] !== undefined && ds?.[k] !== null)
  if (set.length === 0) return { problems: [{ path: '', message: NO_SOURCE }] }
  if (set.length > 1)
    return { problems: [{ path: '', message: `only one of ${set.join(', ')} may be set (a data source is a oneof)` }] }
  const kind = set[0] as (typeof VARIANTS)[number]
  const raw = String((ds as Record<string, unknown>)[kind])
  if (raw === '') return { problems: [{ path: kind, message: 'cannot be empty' }] }
  if (kind === 'secret') return { problems: [{ path: 'secret', message: SECRET_UNSUPPORTED }] }
  if (kind === 'inlineString') return bounded('inlineString', raw)
  if (kind === 'inline') {
    const compact = raw.replace(/[\r\n]/g, '')
    // protojson's unmarshalBytes: standard or URL-safe alphabet, padding as the length says (validate/tags.ts).
    if (!isProtoBase64(raw)) {
      const at = [...compact].findIndex((c) => !/[A-Za-z0-9+/=_-]/.test(c))
      return {
        problems: [{ path: 'inline', message: `illegal base64 data at input byte ${at < 0 ? compact.length : at}` }],
      }
    }
    const bytes = Buffer.from(compact, 'base64')
    return bytesToText('inline', bytes)
  }
  return readDataFile(raw, files)
}

function bounded(path: string, text: string): Resolved {
  if (Buffer.byteLength(text) > DATA_FILE_MAX_BYTES)
    return { problems: [{ path, message: `data is larger than ${DATA_FILE_MAX_BYTES} bytes` }] }
  return { value: text }
}

function bytesToText(path: string, bytes: Uint8Array): Resolved {
  if (bytes.byteLength > DATA_FILE_MAX_BYTES)
    return { problems: [{ path, message: `data is larger than ${DATA_FILE_MAX_BYTES} bytes` }] }
  try {
    return { value: decoder.decode(bytes) }
  } catch {
    return { problems: [{ path, message: 'data is not UTF-8 text (PEM expected)' }] }
  }
}

/** `file:` paths: relative to the snapshot root; `./` allowed; no `..`, no absolute path, no backslash. */
export function normaliseDataPath(p: string): string | undefined {
  if (p.startsWith('/') || p.includes('\\') || p.includes('\0')) return undefined
  const parts: string[] = []
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue
    if (seg === '..') return undefined
    parts.push(seg)
  }
  return parts.length === 0 ? undefined : parts.join('/')
}

function readDataFile(raw: string, files: DataFiles | undefined): Resolved {
  const path = normaliseDataPath(raw)
  if (path === undefined)
    return {
      problems: [
        {
          path: 'file',
          message: `"${raw}" is not a path inside the repository: file data sources are relative to the repository path, without ".."`,
        },
      ],
    }
  if (!isDataFile(path))
    return {
      problems: [{ path: 'file', message: `"${raw}": file data sources must be *.pem, *.crt, *.cert or *.key files` }],
    }
  const content = files?.get(path)
  if (content === undefined)
    return { problems: [{ path: 'file', message: `"${raw}" is not in the repository snapshot` }] }
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content
  return bytesToText('file', bytes)
}

/** The data of an already validated data source, or undefined (compile uses this). Pure. */
export function dataSourceValue(ds: DataSource | undefined, files: DataFiles | undefined): string | undefined {
  const r = resolveDataSource(ds, files)
  return 'value' in r ? r.value : undefined
}

/** True when `text` holds at least one PEM block of `label` (e.g. `CERTIFICATE`, or any `PRIVATE KEY`). Pure. */
export function hasPemBlock(text: string, label: 'CERTIFICATE' | 'PRIVATE KEY'): boolean {
  if (label === 'CERTIFICATE') return /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(text)
  return /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----[\s\S]+?-----END ([A-Z]+ )?PRIVATE KEY-----/.test(text)
}
