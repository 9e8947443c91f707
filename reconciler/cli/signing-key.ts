import { readFile, writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { UsageError, withExamples } from '../../lib/common.js'
import { generateSigningKey, loadSigningKey } from '../../schemas/signing.js'

/**
 * `zonegate signing-key generate --out FILE` and `zonegate signing-key public FILE`: the reconciler's table
 * signing key (docs/decisions/010-signed-tables.md). `generate` writes a new nkey seed to FILE (mode 0600,
 * never over an existing file) and prints only the public key on stdout, so
 * `KEY=$(zonegate signing-key generate --out reconciler.nk)` captures it; `public` prints the public key of an
 * existing seed file. The seed is never printed. Exit 0, or 2 (usage/IO: file exists, unreadable, not a seed).
 */
export function registerSigningKeyCommand(program: Command): void {
  const cmd = program
    .command('signing-key')
    .description("the reconciler's table signing key (an nkey): generate one, or print a key's public part")
  cmd
    .command('generate')
    .description('write a new signing key (nkey seed, mode 0600) to FILE and print its public key')
    .requiredOption('--out <file>', 'where to write the seed (refused when the file exists)')
    .action(async (opts: { out: string }) => {
      const file = resolve(opts.out)
      const key = generateSigningKey()
      const text = `# zonegate table signing key (nkey seed): SECRET, give it only to the reconciler (--signing-key).\n# public key: ${key.publicKey}\n${key.seed}\n`
      try {
        await writeFile(file, text, { mode: 0o600, flag: 'wx' })
      } catch (err) {
        const e = err as NodeJS.ErrnoException
        if (e.code === 'EEXIST') throw new UsageError(`--out ${opts.out}: the file exists (a key is never overwritten)`)
        throw new UsageError(`--out ${opts.out}: ${e.message}`)
      }
      process.stdout.write(`${key.publicKey}\n`)
    })
  cmd
    .command('public')
    .description('print the public key of a signing key file (what egresses pass to --trusted-key)')
    .argument('<file>', 'the seed file')
    .action(async (file: string) => {
      let text: string
      try {
        text = await readFile(file, 'utf8')
      } catch (err) {
        throw new UsageError(`${file}: ${(err as Error).message}`)
      }
      try {
        process.stdout.write(`${loadSigningKey(text).publicKey}\n`)
      } catch (err) {
        throw new UsageError(`${file}: ${(err as Error).message}`)
      }
    })
  withExamples(cmd, [
    'zonegate signing-key generate --out /etc/zonegate/reconciler.nk   # prints the public key',
    'zonegate reconciler --repo ./gitops --signing-key /etc/zonegate/reconciler.nk',
    'zonegate egress --zone zone-a --name ze-a --trusted-key "$(zonegate signing-key public /etc/zonegate/reconciler.nk)"',
  ])
}
