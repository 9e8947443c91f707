import { KINDS } from '../../../schemas/resources.js'

/**
 * The message for a document whose `type` is missing or not a kind zonegate reads: Kuma's
 * `invalid resource type "<T>"` (kumactl apply), plus what a new user needs to fix it — a document in
 * Kuma's Kubernetes format (`apiVersion`/`kind`/`metadata`/`spec`) is named as such with its Universal form,
 * and a near miss gets a did-you-mean. Pure.
 */
export function invalidTypeMessage(value: Record<string, unknown>): string {
  const type = value.type
  const shown = typeof type === 'string' ? type : type === undefined || type === null ? '' : JSON.stringify(type)
  const base = `invalid resource type "${shown}"`
  if ((type === undefined || type === null) && typeof value.kind === 'string' && 'apiVersion' in value)
    return `${base}: this is Kuma's Kubernetes format (apiVersion, kind, metadata, spec); zonegate reads the Universal format: ${universalForm(value)}`
  if (typeof type === 'string' && type !== '') {
    const near = closestKind(type)
    if (near) return `${base} (did you mean "${near}"?)`
  }
  return `${base}. Known types: ${KINDS.join(', ')}`
}

function universalForm(value: Record<string, unknown>): string {
  const kind = value.kind as string
  const meta =
    value.metadata !== null && typeof value.metadata === 'object' ? (value.metadata as Record<string, unknown>) : {}
  const name = typeof meta.name === 'string' && meta.name !== '' ? meta.name : '<name>'
  const mesh = typeof value.mesh === 'string' ? `, mesh: ${value.mesh}` : ''
  return `"type: ${kind}", "name: ${name}"${mesh} at the top level and the fields of spec: inline beside them (no apiVersion, metadata or spec keys)`
}

/** The known kind closest to `type` (case-insensitive Levenshtein distance ≤ 2, or equal ignoring case and a plural s). */
export function closestKind(type: string): string | undefined {
  const t = type.toLowerCase()
  let best: { kind: string; d: number } | undefined
  for (const kind of KINDS) {
    const k = kind.toLowerCase()
    const d = t === k || t === `${k}s` ? 0 : distance(t, k)
    if (d <= Math.max(2, Math.floor(k.length / 5)) && (!best || d < best.d)) best = { kind, d }
  }
  return best?.kind
}

function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(
        (prev[j] as number) + 1,
        (cur[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      )
    prev = cur
  }
  return prev[b.length] as number
}
