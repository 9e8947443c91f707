import type { TableEgress, ZoneTable } from '../../schemas/table.js'

/** Where the proxy listens: `--listen`, else the table's `egresses` entry (decision 004). */
export interface HostPort {
  host: string
  port: number
}

/**
 * Resolves the proxy listener: `--listen`, else host from the table's egress entry (127.0.0.1 when it has no
 * address) with the port from `PORT` or the entry. Throws when no entry matches `name`.
 */
export function resolveListen(
  table: ZoneTable,
  o: { listen?: HostPort; name?: string; env?: NodeJS.ProcessEnv },
): HostPort {
  if (o.listen) return o.listen
  const entry = egressEntry(table, o.name)
  const envPort = o.env?.PORT
  const port = envPort !== undefined && envPort !== '' ? Number(envPort) : entry.port
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT: expected a port, got "${envPort}"`)
  return { host: entry.address ?? '127.0.0.1', port }
}

/**
 * "Which egress entry am I": the entry named `name`, or without a name the table's only entry; undefined
 * otherwise (an unknown name never falls back to the only entry). The listener and the admin port both use it.
 * Pure.
 */
export function findEgressEntry(table: Pick<ZoneTable, 'egresses'>, name: string | undefined): TableEgress | undefined {
  return name === undefined && table.egresses.length === 1
    ? table.egresses[0]
    : table.egresses.find((e) => e.name === name)
}

function egressEntry(table: ZoneTable, name: string | undefined): TableEgress {
  const entry = findEgressEntry(table, name)
  if (entry === undefined) {
    const names = table.egresses.map((e) => e.name).join(', ') || 'none'
    throw new Error(
      name === undefined
        ? `no --listen and no --name: the table has egresses ${names}`
        : `egress ${name} is not in the table of zone ${table.zone} (egresses: ${names}); use --listen`,
    )
  }
  return entry
}
