import { execFile } from 'node:child_process'
import { resolve } from 'node:path'

/** The built CLI (dist/ is built once by vitest's global setup, test/helpers/global-build.ts). */
export const CLI_PATH = resolve(import.meta.dirname, '../../dist/cli/main.js')

export interface CliResult {
  /** Exit code; -1 when the process was killed (timeout) or did not start. */
  code: number
  stdout: string
  stderr: string
  /** Wall time of the run. */
  ms: number
}

/**
 * Runs `node dist/cli/main.js ...args` as a child process and resolves with its exit code, output and duration;
 * never rejects. `env` is added to this process's environment (a value `''` clears a variable for the CLI).
 */
export function runCli(
  args: string[],
  o: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CliResult> {
  const t0 = Date.now()
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI_PATH, ...args],
      { timeout: o.timeoutMs ?? 30_000, env: { ...process.env, ...o.env } },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0
        done({ code: typeof code === 'number' ? code : -1, stdout, stderr, ms: Date.now() - t0 })
      },
    )
  })
}
