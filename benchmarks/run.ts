import { execSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { cpus } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { stealMeter } from './peers/cpu.js'

/**
 * Benchmark runner: `npm run bench -- <name|all> [more names]`. Each `benchmarks/<name>.bench.ts` default-exports
 * `(ctx: BenchContext) => Promise<void>` and reports figures with `ctx.report`. BENCH_SMOKE=1 (CI) asks each
 * benchmark for a tiny iteration count so they keep compiling and running; its figures mean nothing.
 */
export interface BenchContext {
  smoke: boolean
  /** Print one figure: `name  value unit  (target …)`. */
  report(name: string, value: number, unit: string, extra?: { target?: number; note?: string }): void
  /** Environment line for RESULTS.md: commit, node, cpu. */
  env: string
}

export type Bench = (ctx: BenchContext) => Promise<void>

const here = dirname(fileURLToPath(import.meta.url))

function envLine(): string {
  let commit = 'unknown'
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: here, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim()
  } catch {}
  return `commit ${commit}, node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}`
}

async function main() {
  const all = readdirSync(here)
    .filter((f) => f.endsWith('.bench.ts'))
    .map((f) => basename(f, '.bench.ts'))
    .sort()
  const args = process.argv.slice(2)
  const names = args.length === 0 || args.includes('all') ? all : args
  const unknown = names.filter((n) => !all.includes(n))
  if (unknown.length > 0) {
    console.error(`bench: unknown benchmark ${unknown.join(', ')}; have: ${all.join(', ')}`)
    process.exit(2)
  }
  const smoke = process.env.BENCH_SMOKE === '1'
  const env = envLine()
  console.log(`# ${env}${smoke ? ' (smoke run: figures are not meaningful)' : ''}`)
  let failed = 0
  for (const name of names) {
    console.log(`\n## ${name}`)
    const mod = (await import(pathToFileURL(join(here, `${name}.bench.ts`)).href)) as { default: Bench }
    const ctx: BenchContext = {
      smoke,
      env,
      report(figure, value, unit, extra) {
        const target =
          extra?.target !== undefined
            ? `  (target ${extra.target} ${unit}${value <= extra.target ? ', met' : ', NOT met'})`
            : ''
        console.log(
          `${figure.padEnd(48)} ${value.toFixed(value < 10 ? 2 : 1).padStart(10)} ${unit}${target}${extra?.note ? `  ${extra.note}` : ''}`,
        )
      },
    }
    const steal = stealMeter(cpus().length)
    try {
      await mod.default(ctx)
    } catch (err) {
      failed++
      console.error(`bench ${name} failed:`, err)
    }
    // On a VM, time the host gave to other guests lowers every rate of the run and nothing in the VM shows it
    const stolen = steal()
    if (stolen !== undefined) {
      console.log(
        `# ${name}: steal (CPU the hypervisor gave to other guests) ${stolen.toFixed(1)} % of the machine over the benchmark${stolen > 5 ? ': figures are low, compare only ratios taken side by side, or re-run' : ''}`,
      )
    }
  }
  process.exit(failed > 0 ? 1 : 0)
}

await main()
