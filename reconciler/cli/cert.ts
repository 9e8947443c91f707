import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { natsServers, natsUnreachableMessage, parseDuration, UsageError } from '../../lib/common.js'
import { addNatsOptions, type NatsFlags, natsConnectOptions } from '../../lib/nats-connect.js'
import type { CaMaterial } from '../core/pki/index.js'

/** Exit codes of `zonegate cert issue`: 0 written, 1 the mesh or its CA is not available, 2 usage/IO. */
export const CertExit = { Ok: 0, Failed: 1 } as const

class CertFailed extends Error {}

interface IssueOptions extends NatsFlags {
  mesh: string
  service: string
  out: string
  validFor: string
  path?: string
  timeout: string
}

/**
 * `zonegate cert issue --mesh M --service S [--out DIR] [--valid-for D] [--path REPO_FOLDER] [--nats URL]`: a test or
 * demo workload identity — a fresh key and a certificate with SANs `spiffe://M/S` and `kuma://kuma.io/service/S`
 * signed by the mesh CA — written as `DIR/cert.pem`, `DIR/key.pem`, `DIR/ca.pem` (mode 0600).
 * The CA: with `--path`, the mesh is read from that repository folder: a `provided` backend signs from its data
 * sources, a `builtin` one is fetched from KV `zonegate-ca` over NATS. Without `--path`, the mesh's enabled backend
 * is the one the reconciler last applied (KV), which must be builtin. See docs/mtls.md.
 */
export function registerCertCommand(program: Command): void {
  const cert = program.command('cert').description('mesh identity certificates for tests and demos')
  addNatsOptions(
    cert
      .command('issue')
      .description('issue a workload certificate (spiffe://MESH/SERVICE) signed by the mesh CA')
      .requiredOption('--mesh <mesh>', 'mesh name')
      .requiredOption('--service <service>', 'the workload service (kuma.io/service)')
      .option('--out <dir>', 'folder to write cert.pem, key.pem and ca.pem to', '.')
      .option('--valid-for <duration>', 'certificate lifetime (e.g. 1h, 30m)', '24h')
      .option('--path <folder>', 'repository folder to read the mesh from (provided CA backends)'),
  )
    .option('--timeout <duration>', 'how long to wait for NATS to answer (at most 5s is used)', '5s')
    .action(async (opts: IssueOptions) => {
      parseDuration(opts.timeout, '--timeout') // a bad value is a usage error before any work
      const lifetimeMs = parseDuration(opts.validFor, '--valid-for')
      if (lifetimeMs <= 0) throw new UsageError('--valid-for: must be positive')
      if (!/^[a-zA-Z0-9.\-_:]+$/.test(opts.service))
        throw new UsageError(`--service: "${opts.service}" is not a valid kuma.io/service value`)
      try {
        const ca = await findCa(opts)
        const { issueWorkloadCertificate, loadCa } = await import('../core/pki/index.js')
        const loaded = await loadCa(ca.material.cert, ca.material.key)
        const issued = await issueWorkloadCertificate({
          ca: loaded,
          mesh: opts.mesh,
          service: opts.service,
          lifetimeMs,
          now: new Date(),
        })
        const dir = resolve(opts.out)
        await mkdir(dir, { recursive: true, mode: 0o700 })
        const files: [string, string][] = [
          ['cert.pem', issued.cert],
          ['key.pem', issued.key],
          ['ca.pem', ca.material.cert],
        ]
        for (const [name, text] of files) {
          const file = join(dir, name)
          await writeFile(file, text, { mode: 0o600 })
          await chmod(file, 0o600) // an existing file keeps its mode on write
        }
        process.stdout.write(
          `✔ spiffe://${opts.mesh}/${opts.service} (${ca.source}), valid until ${issued.notAfter.toISOString()}\n` +
            `  ${files.map(([n]) => join(dir, n)).join('\n  ')}\n`,
        )
        process.exitCode = CertExit.Ok
      } catch (err) {
        if (err instanceof UsageError) throw err
        process.stderr.write(`✗ ${err instanceof Error ? err.message : String(err)}\n`)
        process.exitCode = CertExit.Failed
      }
    })
}

async function findCa(opts: IssueOptions): Promise<{ material: CaMaterial; source: string }> {
  if (opts.path) {
    const { FolderSourceError, readFolderSnapshot } = await import('../source/folder-source.js')
    const snapshot = await readFolderSnapshot(opts.path).catch((err: unknown) => {
      if (err instanceof FolderSourceError) throw new UsageError(`${err.message} [${err.code}]`)
      throw err
    })
    const { validateSnapshot } = await import('../core/validate/index.js')
    const { meshCaSpec } = await import('../core/mesh-ca.js')
    const result = validateSnapshot(snapshot)
    const located = result.resources.meshes.find((m) => m.resource.name === opts.mesh)
    if (!located) {
      const invalid = result.violations.some((v) => v.kind === 'Mesh' && v.name === opts.mesh)
      throw new CertFailed(
        invalid
          ? `mesh "${opts.mesh}" in ${opts.path} has violations (run zonegate validate ${opts.path})`
          : `mesh "${opts.mesh}" is not in ${opts.path}`,
      )
    }
    const spec = meshCaSpec(located.resource, result.resources.files)
    if (!spec) throw new CertFailed(`mesh "${opts.mesh}" has mTLS disabled`)
    if (spec.type === 'provided') {
      if (!spec.provided) throw new CertFailed(`the provided CA of mesh "${opts.mesh}" cannot be read`)
      return { material: spec.provided, source: `provided CA "${spec.backend}" from ${opts.path}` }
    }
    return { material: await builtinOverNats(opts, spec.backend), source: `builtin CA "${spec.backend}" from NATS` }
  }
  return { material: await builtinOverNats(opts), source: 'builtin CA from NATS' }
}

/** Reads the builtin CA of the mesh from KV `zonegate-ca` (backend: given, or the one last applied). */
async function builtinOverNats(opts: IssueOptions, backend?: string): Promise<CaMaterial> {
  const servers = natsServers(opts.nats)
  const auth = await natsConnectOptions(opts)
  const { connect } = await import('@nats-io/transport-node')
  const { jetstream } = await import('@nats-io/jetstream')
  const { Kvm } = await import('@nats-io/kv')
  const { Bucket } = await import('../../schemas/subjects.js')
  const { readAppliedMtls, readBuiltinCa } = await import('../transport/ca-store.js')
  const { natsServersAnswering, connectBudgetMs } = await import('../../lib/nats-probe.js')
  const budget = connectBudgetMs(parseDuration(opts.timeout, '--timeout'))
  const answering = await natsServersAnswering(servers, budget)
  const nc = await connect({
    ...auth,
    servers: answering,
    maxReconnectAttempts: 0,
    waitOnFirstConnect: false,
    timeout: budget,
  }).catch((err: unknown) => {
    throw new UsageError(natsUnreachableMessage(servers, err))
  })
  try {
    const kv = await new Kvm(jetstream(nc, { timeout: 5000 })).open(Bucket.Ca)
    let name = backend
    if (!name) {
      const applied = await readAppliedMtls(kv)
      name = applied?.meshes[opts.mesh]
      if (!name)
        throw new CertFailed(
          `mesh "${opts.mesh}" has no mTLS in the revision the reconciler applied (or none was applied yet)`,
        )
    }
    const ca = await readBuiltinCa(kv, opts.mesh, name)
    if (!ca)
      throw new CertFailed(
        `no builtin CA "${name}" for mesh "${opts.mesh}" in KV ${Bucket.Ca} (provided CAs: use --path; builtin ones are created by the reconciler)`,
      )
    return ca
  } catch (err) {
    if (err instanceof CertFailed) throw err
    throw new CertFailed(`reading KV ${Bucket.Ca}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  } finally {
    await nc.close().catch(() => {})
  }
}
