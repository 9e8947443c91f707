import type { Command } from 'commander'
import { Exit, formatStructured, type OutputFormat, outputOption, UsageError, withExamples } from '../../lib/common.js'
import { formatViolation } from '../../schemas/violation.js'
import type { Resources } from '../core/model.js'
// heavy modules (ajv, yaml) load only when the command runs, so `zonegate --help` and other commands start fast
import { FolderSourceError, readFolderSnapshot } from '../source/folder-source.js'

const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`
const resourceCount = (r: Resources) =>
  r.meshes.length +
  r.zoneEgresses.length +
  r.zoneIngresses.length +
  r.externalServices.length +
  (r.meshTrafficPermissions?.length ?? 0)

/**
 * `zonegate validate PATH [--output json]`: validates a folder (one snapshot) or one YAML file. Text output
 * prints one compiler-style line per violation (`file:line:column Kind/name path: message`), then warnings
 * prefixed `warning: `, then a summary; JSON prints `{ valid, violations, warnings }`. Exit 0 valid,
 * 1 invalid, 2 usage or I/O error (unreadable path, symlink leaving the folder, too many files).
 */
export function registerValidateCommand(program: Command): void {
  const cmd = program
    .command('validate')
    .description('validate a folder of Kuma Universal YAML (one snapshot) or a single file')
    .argument('<path>', 'folder or .yaml/.yml file')
    .addOption(outputOption())
    .action(async (path: string, opts: { output: OutputFormat }) => {
      let snapshot: Awaited<ReturnType<typeof readFolderSnapshot>>
      try {
        snapshot = await readFolderSnapshot(path)
      } catch (err) {
        if (err instanceof FolderSourceError) throw new UsageError(`${err.message} [${err.code}]`)
        throw err
      }
      const { validateSnapshot } = await import('../core/validate/index.js')
      const result = validateSnapshot(snapshot)
      if (opts.output !== 'text') {
        const body = { valid: result.valid, violations: result.violations, warnings: result.warnings }
        process.stdout.write(await formatStructured(body, opts.output))
      } else {
        const lines = [
          ...result.violations.map(formatViolation),
          ...result.warnings.map((w) => `warning: ${formatViolation(w)}`),
        ]
        const summary = result.valid
          ? `${path}: valid (${count(resourceCount(result.resources), 'resource')}, ${count(result.warnings.length, 'warning')})`
          : `${path}: invalid (${count(result.violations.length, 'violation')}, ${count(result.warnings.length, 'warning')})`
        process.stdout.write(`${[...lines, summary].join('\n')}\n`)
      }
      process.exitCode = result.valid ? Exit.Ok : Exit.Invalid
    })
  withExamples(cmd, [
    'zonegate validate ./gitops                 # exit 0 valid, 1 invalid, 2 usage or I/O',
    'zonegate validate meshes/default.yaml -o json | jq .violations',
  ])
}
