import type { Command } from 'commander'
import { Exit, formatStructured, type OutputFormat, outputOption, UsageError, withExamples } from '../../lib/common.js'
import type { TableEgress } from '../../schemas/table.js'
import { diffZoneTables, hasChanges, type ZoneDiff } from '../core/diff.js'
import type { Snapshot } from '../core/model.js'
import { compileSnapshot, formatUpstream, formatUpstreams, readFolderOrUsage, violationLines } from './compile.js'
import { assertLocalRepository, isRepoUrl } from './repo-check.js'

const egressText = (e: TableEgress) =>
  `${e.address ?? '(process)'}:${e.port}${e.adminPort ? ` admin ${e.adminPort}` : ''}`

/** The readable per-zone route changes of `zonegate diff`. Pure. */
export function formatDiffText(from: string, to: string, diffs: readonly ZoneDiff[]): string {
  const lines = [`diff ${from} → ${to}`]
  for (const z of diffs) {
    const n = z.routes.added.length + z.routes.removed.length
    if (z.status === 'unchanged') lines.push(`${z.zone}: unchanged`)
    else if (z.status === 'added') lines.push(`${z.zone}: added (${n} route${n === 1 ? '' : 's'})`)
    else if (z.status === 'removed') lines.push(`${z.zone}: removed (${n} route${n === 1 ? '' : 's'})`)
    else lines.push(`${z.zone}: changed`)
    for (const r of z.routes.added) lines.push(`  + ${r.sni}  ${r.kind} ${r.mode}  ${formatUpstreams(r)}`)
    for (const r of z.routes.removed) lines.push(`  - ${r.sni}  ${r.kind} ${r.mode}  ${formatUpstreams(r)}`)
    for (const c of z.routes.changed) {
      const parts: string[] = []
      for (const f of c.fields.filter((f) => f !== 'upstreams')) {
        const show = (v: unknown) => (v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v))
        parts.push(`${f} ${show(c.before[f as keyof typeof c.before])} → ${show(c.after[f as keyof typeof c.after])}`)
      }
      for (const u of c.upstreams) {
        const at = formatUpstream({ ...u, weight: 0 }).replace(/ w0/, '')
        if (u.before === undefined) parts.push(`+ ${at} w${u.after}`)
        else if (u.after === undefined) parts.push(`- ${at} w${u.before}`)
        else parts.push(`${at} w${u.before} → w${u.after}`)
      }
      lines.push(`  ~ ${c.sni}  ${parts.join('; ')}`)
    }
    if (z.status === 'changed')
      for (const e of z.egresses) {
        if (!e.before) lines.push(`  + egress ${e.name} ${egressText(e.after as TableEgress)}`)
        else if (!e.after) lines.push(`  - egress ${e.name} ${egressText(e.before)}`)
        else lines.push(`  ~ egress ${e.name} ${egressText(e.before)} → ${egressText(e.after)}`)
      }
  }
  const changed = diffs.filter((d) => d.status !== 'unchanged').length
  lines.push(`${changed} zone${changed === 1 ? '' : 's'} changed, ${diffs.length - changed} unchanged`)
  return `${lines.join('\n')}\n`
}

interface DiffOptions {
  repo?: string
  path?: string
  output: OutputFormat
}

/**
 * `zonegate diff FROM TO [--repo R] [--path P] [--output json]`: compiles both sides and prints the route-level
 * changes per zone (readable, or JSON `{from, to, changed, zones: ZoneDiff[]}`). FROM and TO are folders, or with
 * `--repo` revisions (branch, tag, sha) of that local repository read from its object store, optionally under the
 * sub-folder `--path` (as the reconciler's `--path`). Exit 0 when nothing changes, 3 when something does, 1 when
 * either side is invalid (its violations printed, prefixed `from:`/`to:`; `to` is also invalid when it changes
 * `mtls.enabledBackend` of a mesh whose mTLS stays on, Kuma's rule), 2 on usage and I/O errors (missing folder,
 * unknown ref, not a repository) with a `zonegate:` message on stderr (docs/design.md §5: codes never collide).
 */
export function registerDiffCommand(program: Command): void {
  const cmd = program
    .command('diff')
    .description('route-level diff per zone between two folders, or two revisions of a repository')
    .argument('<from>', 'folder, or with --repo a branch, tag or sha')
    .argument('<to>', 'folder, or with --repo a branch, tag or sha')
    .option('--repo <dir>', 'local Git repository (working copy or bare) whose revisions FROM and TO are')
    .option('--path <path>', 'with --repo: the sub-folder of the repository holding the YAML')
    .addOption(outputOption())
    .action(async (from: string, to: string, opts: DiffOptions) => {
      if (opts.path !== undefined && opts.repo === undefined) throw new UsageError('--path needs --repo')
      if (opts.repo && isRepoUrl(opts.repo))
        throw new UsageError('--repo takes a local repository path (clone it first)')
      if (opts.repo) assertLocalRepository(opts.repo)
      const cache = {}
      const read = async (ref: string): Promise<Snapshot> => {
        if (opts.repo === undefined) return readFolderOrUsage(ref)
        try {
          // isomorphic-git loads only when --repo is used
          const { readGitSnapshot } = await import('../source/git-tree.js')
          return await readGitSnapshot({ dir: opts.repo, ref, path: opts.path, cache })
        } catch (err) {
          const { GitTreeError } = await import('../source/git-tree.js')
          if (err instanceof GitTreeError) throw new UsageError(`${err.message} [${err.code}]`)
          throw new UsageError(
            `cannot read ${ref} from ${opts.repo}: ${err instanceof Error ? err.message : String(err)}`,
          )
        }
      }
      const [a, b] = [await read(from), await read(to)]
      const ca = await compileSnapshot(a)
      let cb = await compileSnapshot(b)
      if (ca.ok && cb.ok) {
        // Kuma refuses to change the CA of a mesh whose mTLS stays on (the reconciler would refuse `to` too).
        const { caChangeViolations, mtlsBackendsOf } = await import('../core/ca-change.js')
        const refused = caChangeViolations(mtlsBackendsOf(ca.result.resources), cb.result.resources)
        if (refused.length > 0) cb = { ok: false, result: { ...cb.result, valid: false, violations: refused } }
      }
      if (!ca.ok || !cb.ok) {
        const sides = [
          { name: 'from', rev: a.revision, c: ca },
          { name: 'to', rev: b.revision, c: cb },
        ].filter((s) => !s.c.ok)
        if (opts.output !== 'text') {
          const body = Object.fromEntries(
            sides.map((s) => [s.name, { revision: s.rev, violations: s.c.result.violations }]),
          )
          process.stdout.write(await formatStructured({ valid: false, ...body }, opts.output))
        } else {
          const lines = sides.flatMap((s) => [
            ...violationLines(s.c.result.violations, `${s.name}: `),
            `${s.name} (${s.rev}): invalid (${s.c.result.violations.length} violations)`,
          ])
          process.stderr.write(`${lines.join('\n')}\n`)
        }
        process.exitCode = Exit.Invalid
        return
      }
      const zones = diffZoneTables(ca.tables, cb.tables)
      const changed = hasChanges(zones)
      if (opts.output !== 'text')
        process.stdout.write(await formatStructured({ from: a.revision, to: b.revision, changed, zones }, opts.output))
      else process.stdout.write(formatDiffText(a.revision, b.revision, zones))
      process.exitCode = changed ? Exit.Differ : Exit.Ok
    })
  withExamples(cmd, [
    'zonegate diff ./before ./after              # exit 0 same, 3 differ, 1 invalid, 2 usage or I/O',
    'zonegate diff main HEAD --repo . --path gitops',
    'zonegate diff origin/main HEAD --repo . -o json | jq ".zones[] | select(.status != "unchanged")"',
  ])
}
