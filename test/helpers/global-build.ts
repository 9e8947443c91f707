import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Vitest global setup: builds dist/ once, before any test file runs. Tests that run the built CLI or spawn
 * processes from the Procfile use it. Rebuilding it from inside a test file (as tests once did) rewrote dist/
 * while other files' processes were importing it, and they failed to start.
 */
export default function setup(): void {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
  const started = Date.now()
  try {
    execFileSync(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'pipe' })
  } catch (err) {
    // tsc emits JavaScript even with type errors (typecheck is its own CI step); a missing CLI is caught by tests
    const out = String((err as { stdout?: Buffer }).stdout ?? '').slice(0, 2000)
    console.warn(`global setup: tsc reported errors (dist/ still emitted):\n${out}`)
  }
  console.log(`global setup: dist/ built in ${Date.now() - started} ms`)
}
