import { type DataSource, SERVICE_TAG } from '../../../schemas/resources.js'

/**
 * Reports one violation: stable rule id, Kuma path, message, and optionally the path whose position to
 * point at when it differs from the reported path (`mtls.dpcert.rotation.expiration` is reported without index).
 */
export type Emit = (rule: string, path: string, message: string, at?: string) => void

export const isEmptyDataSource = (ds: DataSource): boolean => !ds.secret && !ds.file && !ds.inline && !ds.inlineString

/**
 * Whether protojson decodes `s` as a `bytes` / BytesValue field (`google.golang.org/protobuf/encoding/protojson`,
 * unmarshalBytes): standard base64, or URL-safe when `-`/`_` occur; padding required when the length is a
 * multiple of 4, refused otherwise; CR and LF ignored. Pure.
 */
export function isProtoBase64(s: string): boolean {
  const alpha = /[-_]/.test(s) ? 'A-Za-z0-9\\-_' : 'A-Za-z0-9+/'
  const body = s.replace(/[\r\n]/g, '')
  if (s.length % 4 === 0)
    return body.length % 4 === 0 && new RegExp(`^[${alpha}]*(?:[${alpha}]{2}==|[${alpha}]{3}=)?$`).test(body)
  return body.length % 4 !== 1 && new RegExp(`^[${alpha}]*$`).test(body)
}

const TAG_NAME = /^[a-zA-Z0-9.\-_:/]*$/
const TAG_VALUE = /^[a-zA-Z0-9.\-_:]*$/
const SELECTOR_VALUE = /^([a-zA-Z0-9.\-_:/]*|\*)$/

/**
 * Kuma's ValidateTags (§3.5), or ValidateSelector with `selector: true` (values may hold `/` or be `*`,
 * and at least one tag is required).
 */
export function tagRules(
  path: string,
  tags: Record<string, string>,
  emit: Emit,
  opts: { requireService?: boolean; selector?: boolean },
): void {
  const keys = Object.keys(tags).sort()
  if (opts.selector && keys.length === 0) emit('tags.empty', path, 'must have at least one tag')
  for (const key of keys) {
    const value = tags[key]!
    const at = `${path}[${JSON.stringify(key)}]`
    if (key === '') emit('tags.name', path, 'tag name must be non-empty')
    if (!TAG_NAME.test(key))
      emit('tags.name', at, 'tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores')
    if (value === '') emit('tags.value', at, 'tag value must be non-empty')
    if (opts.selector) {
      if (!SELECTOR_VALUE.test(value))
        emit(
          'tags.value',
          at,
          'tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be "*"',
        )
    } else if (!TAG_VALUE.test(value))
      emit('tags.value', at, 'tag value must consist of alphanumeric characters, dots, dashes and underscores')
  }
  if (opts.requireService && !Object.hasOwn(tags, SERVICE_TAG))
    emit('tags.service-missing', path, 'mandatory tag "kuma.io/service" is missing')
}
