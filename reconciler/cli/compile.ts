import type { Command } from 'commander'
import { Exit, formatStructured, type OutputFormat, outputOption, UsageError, withExamples } from '../../lib/common.js'
import { loadSigningKey, signTable, type TableSigner } from '../../schemas/signing.js'
import type { TableRoute, TableUpstream, ZoneTable } from '../../schemas/table.js'
import { formatViolation, type Violation } from '../../schemas/violation.js'
import type { formatTableJson as FormatTableJson } from '../core/compile.js'
import type { Snapshot } from '../core/model.js'
import type { ValidationResult } from '../core/validate/index.js'
import { FolderSourceError, readFolderSnapshot } from '../source/folder-source.js'

/**
 * `198.51.100.21:10001 w2 (zone-b)`, plus ` tls <serverName>` (and `ca`, `client-cert`) when TLS is originated;
 * IPv6 addresses bracketed. Pure.
 */
export function formatUpstream(u: TableUpstream): string {
  const host = u.address.includes(':') ? `[${u.address}]` : u.address
  let tls = ''
  if (u.tls?.enabled) {
    const extras = [u.tls.serverName, u.tls.caCert ? 'ca' : undefined, u.tls.clientCert ? 'client-cert' : undefined]
    tls = ` tls${extras
      .filter(Boolean)
      .map((x) => ` ${x}`)
      .join('')}`
  }
  return `${host}:${u.port} w${u.weight}${u.zone ? ` (${u.zone})` : ''}${tls}`
}

/** A route's upstreams with weights and TLS, then route-level TLS of old tables (`tls <serverName>`). Pure. */
export function formatUpstreams(r: TableRoute): string {
  const tls = r.tls?.enabled ? `  tls${r.tls.serverName ? ` ${r.tls.serverName}` : ''}` : ''
  return `${r.upstreams.map(formatUpstream).join(', ')}${tls}`
}

/** Who may use an external route: `allow web,api`, `allow *`, `allow * deny bad`, `allow none`. Pure. */
export function formatAccess(r: TableRoute): string {
  if (r.allow === undefined) return ''
  const allow = r.allow.length === 0 ? 'none' : r.allow.join(',')
  return `  allow ${allow}${r.deny && r.deny.length > 0 ? ` deny ${r.deny.join(',')}` : ''}`
}

/** The readable columns of a route after its SNI: mode (padded), upstreams with weights, TLS, access. Pure. */
export function formatRouteTail(r: TableRoute): string {
  return `${r.mode.padEnd(15)} ${formatUpstreams(r)}${formatAccess(r)}`
}

/** The readable form of `zonegate compile`: a header, the egresses, then one line per route. Pure. */
export function formatTableText(t: ZoneTable): string {
  const lines = [`zone ${t.zone}${t.revision ? `  revision ${t.revision}` : ''}`, `digest ${t.digest}`]
  for (const e of t.egresses)
    lines.push(
      `egress ${e.name} ${e.address ?? '(address from the process)'}:${e.port}${e.adminPort ? ` admin ${e.adminPort}` : ''}`,
    )
  const width = Math.max(3, ...t.routes.map((r) => r.sni.length))
  lines.push('', `${'SNI'.padEnd(width)}  ${'MODE'.padEnd(15)} UPSTREAMS`)
  for (const r of t.routes) lines.push(`${r.sni.padEnd(width)}  ${formatRouteTail(r)}`)
  for (const m of t.meshes ?? []) lines.push(`mesh ${m.name}: ${m.caCerts.length} CA certificate(s)`)
  lines.push('', `${t.routes.length} route${t.routes.length === 1 ? '' : 's'}`)
  return `${lines.join('\n')}\n`
}

/** Reads a folder snapshot; FolderSourceError becomes a UsageError (exit 2). */
export async function readFolderOrUsage(path: string): Promise<Snapshot> {
  try {
    return await readFolderSnapshot(path)
  } catch (err) {
    if (err instanceof FolderSourceError) throw new UsageError(`${err.message} [${err.code}]`)
    throw err
  }
}

/** Violation lines as `zonegate validate` prints them, optionally prefixed (`from: `). Pure. */
export const violationLines = (violations: readonly Violation[], prefix = '') =>
  violations.map((v) => `${prefix}${formatViolation(v)}`)

/** Validates and compiles a snapshot: the tables (revision set to the snapshot's), or the validation result. */
export async function compileSnapshot(
  snapshot: Snapshot,
): Promise<
  { ok: true; tables: Map<string, ZoneTable>; result: ValidationResult } | { ok: false; result: ValidationResult }
> {
  // heavy modules (ajv, yaml) load only when a command runs, so `zonegate --help` and other commands start fast
  const { validateSnapshot } = await import('../core/validate/index.js')
  const { compileZoneTables } = await import('../core/compile.js')
  const result = validateSnapshot(snapshot)
  if (!result.valid) return { ok: false, result }
  const tables = compileZoneTables(result.resources)
  for (const t of tables.values()) t.revision = snapshot.revision
  return { ok: true, tables, result }
}

/**
 * `zonegate compile PATH --zone Z [--output json]`: validates the folder and prints zone Z's table envelope
 * (JSON, as published minus generation — and minus signature unless `--signing-key FILE` signs it, for an
 * egress that runs `--static` with `--trusted-key` —, `revision` = `path:<PATH>`) or a readable table. Exit 0;
 * 1 when the snapshot is invalid (violations printed; JSON: `{valid:false, violations, warnings}` on stdout);
 * 2 on usage or I/O errors, or when Z has no ZoneEgress (the message lists the zones that have one).
 */
export function registerCompileCommand(program: Command): void {
  const cmd = program
    .command('compile')
    .description("validate a folder and print one zone's SNI routing table")
    .argument('<path>', 'folder (or .yaml/.yml file) of Kuma Universal YAML')
    .requiredOption('--zone <zone>', 'the zone whose table to print')
    .addOption(outputOption())
    .option('--signing-key <file>', 'sign the table with this nkey seed (for `egress --static` with --trusted-key)')
    .action(async (path: string, opts: { zone: string; output: OutputFormat; signingKey?: string }) => {
      const signer = opts.signingKey ? await readSigner(opts.signingKey) : undefined
      const compiled = await compileSnapshot(await readFolderOrUsage(path))
      if (!compiled.ok) {
        const { violations, warnings } = compiled.result
        if (opts.output !== 'text')
          process.stdout.write(await formatStructured({ valid: false, violations, warnings }, opts.output))
        else
          process.stderr.write(
            `${[...violationLines(violations), `${path}: invalid (${violations.length} violation${violations.length === 1 ? '' : 's'}), nothing compiled`].join('\n')}\n`,
          )
        process.exitCode = Exit.Invalid
        return
      }
      const unsigned = compiled.tables.get(opts.zone)
      const table = unsigned && signer ? signTable(unsigned, signer) : unsigned
      if (!table) {
        const zones = [...compiled.tables.keys()]
        throw new UsageError(
          `zone "${opts.zone}" has no ZoneEgress in ${path}, so it has no table; ${zones.length === 0 ? 'no zone has a ZoneEgress' : `zones with a ZoneEgress: ${zones.join(', ')}`}`,
        )
      }
      // Builtin CAs are created by the reconciler (KV zonegate-ca): offline, their meshes have no `meshes` entry.
      const { enabledBackendOf } = await import('../core/mesh-ca.js')
      const builtin = new Set(
        compiled.result.resources.meshes
          .filter((m) => enabledBackendOf(m.resource)?.type === 'builtin')
          .map((m) => m.resource.name),
      )
      const offline = [...new Set(table.routes.filter((r) => r.mode === 'terminate-mtls').map((r) => r.mesh))]
        .filter((m) => builtin.has(m))
        .sort()
      if (offline.length > 0)
        process.stderr.write(
          `note: mesh${offline.length === 1 ? '' : 'es'} ${offline.join(', ')} use${offline.length === 1 ? 's' : ''} a builtin CA, created by the reconciler: the published table also lists ${offline.length === 1 ? 'its' : 'their'} CA certificate under "meshes" (not shown offline)\n`,
        )
      const formatTableJson: typeof FormatTableJson = (await import('../core/compile.js')).formatTableJson
      if (opts.output === 'yaml')
        process.stdout.write(await formatStructured(JSON.parse(formatTableJson(table)), 'yaml'))
      else process.stdout.write(opts.output === 'json' ? formatTableJson(table) : formatTableText(table))
      process.exitCode = Exit.Ok
    })
  withExamples(cmd, [
    'zonegate compile ./gitops --zone zone-a',
    'zonegate compile ./gitops --zone zone-a -o json > zone-a.table.json   # a table for `egress --static`',
    'zonegate compile ./gitops --zone zone-a -o json --signing-key reconciler.nk > zone-a.table.json   # signed',
  ])
}

/** The `--signing-key` file as a signer; a usage error (exit 2) naming the file, never its content. */
async function readSigner(file: string): Promise<TableSigner> {
  const { readFile } = await import('node:fs/promises')
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new UsageError(`--signing-key ${file}: ${(err as Error).message}`)
  }
  try {
    return loadSigningKey(text)
  } catch (err) {
    throw new UsageError(`--signing-key ${file}: ${(err as Error).message}`)
  }
}
