import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Command } from 'commander'
import {
  formatDuration,
  logSettings,
  natsServers,
  parseDuration,
  parseHostPort,
  parseReplicas,
  UsageError,
  withExamples,
} from '../../lib/common.js'
import { addNatsOptions, type NatsFlags, natsConnectOptions } from '../../lib/nats-connect.js'
import { DEFAULT_ZONE } from '../../schemas/resources.js'
import { LEASES_TTL_MS } from '../../schemas/subjects.js'
import { DEFAULT_ROLLOUT_TIMEOUT_MS } from '../core/rollout.js'
import { assertLocalRepository } from './repo-check.js'

/** Defaults of `zonegate reconciler` (docs/reconciler.md). */
export const RECONCILER_DEFAULTS = {
  branch: 'main',
  interval: '10s',
  http: '127.0.0.1:9090',
  leaseTtl: formatDuration(LEASES_TTL_MS),
  rolloutTimeout: formatDuration(DEFAULT_ROLLOUT_TIMEOUT_MS),
} as const

/** `$XDG_CACHE_HOME/zonegate/git`, else `~/.cache/zonegate/git`. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'zonegate', 'git')
}

interface Flags extends NatsFlags {
  repo: string
  branch: string
  path?: string
  interval: string
  http: string
  cacheDir?: string
  webhookSecretFile?: string
  insecureWebhook?: boolean
  signingKey?: string
  allowEmpty?: boolean
  defaultZone: string
  id?: string
  leaseTtl: string
  leaseRenew?: string
  rolloutTimeout: string
  replicas?: string
}

/**
 * `zonegate reconciler --repo R [--branch B] [--path P] [--interval D] [--http HOST:PORT] [--nats URL]...
 * [--cache-dir D] [--webhook-secret-file F] [--allow-empty] [--default-zone Z] [--id ID] [--lease-ttl D] [--lease-renew D]
 * [--rollout-timeout D]`:
 * runs the reconciler process until SIGTERM/SIGINT (graceful: finishes or aborts the pass, releases the lease,
 * closes NATS). Bad flags are usage errors (exit 2).
 */
export function registerReconcilerCommand(program: Command): void {
  const cmd = addNatsOptions(
    program
      .command('reconciler')
      .description('run the reconciler: Git → validate → compile → diff → publish per-zone tables on NATS')
      .requiredOption('--repo <path|url>', 'local repository path (bare or not) or http(s) URL')
      .option('--branch <name>', 'branch to follow', RECONCILER_DEFAULTS.branch)
      .option('--path <dir>', 'sub-folder of the repository holding the resources (default: the root)')
      .option('--interval <duration>', 'poll interval (jittered ±10%)', RECONCILER_DEFAULTS.interval)
      .option(
        '--http <host:port>',
        'admin HTTP: /healthz /readyz /status /metrics /hooks/git',
        RECONCILER_DEFAULTS.http,
      ),
  )
    .option('--cache-dir <dir>', 'where URL repositories are cloned (default $XDG_CACHE_HOME/zonegate/git)')
    .option('--webhook-secret-file <file>', 'HMAC secret of POST /hooks/git (X-Hub-Signature-256); hook off without')
    .option('--insecure-webhook', 'without --webhook-secret-file, accept unsigned POST /hooks/git (development only)')
    .option(
      '--signing-key <file>',
      'nkey seed file tables are signed with (`zonegate signing-key generate`); egresses pin its public key',
    )
    .option('--allow-empty', 'allow a commit that leaves a zone without any of its routes')
    .option('--default-zone <zone>', 'zone of a ZoneEgress/ZoneIngress without `zone`', DEFAULT_ZONE)
    .option('--id <id>', 'id of this reconciler in the lease and status (default <host>-<pid>-<random>)')
    .option(
      '--lease-ttl <duration>',
      'lease TTL of KV zonegate-leases when this process creates it',
      RECONCILER_DEFAULTS.leaseTtl,
    )
    .option(
      '--lease-renew <duration>',
      'how often the lease holder renews (default: a third of the TTL; at most half of it)',
    )
    .option(
      '--rollout-timeout <duration>',
      'how long every live egress instance of a zone has to report a new table before `timeout`',
      RECONCILER_DEFAULTS.rolloutTimeout,
    )
    .option('--replicas <n>', 'replicas of the buckets and stream it creates (default: 3 in a cluster, else 1)')
    .action(async (flags: Flags, self: Command) => {
      assertLocalRepository(flags.repo)
      const replicas = flags.replicas === undefined ? undefined : parseReplicas(flags.replicas)
      const intervalMs = parseDuration(flags.interval, '--interval')
      if (intervalMs < 100) throw new UsageError('--interval: must be at least 100ms')
      const natsAuth = await natsConnectOptions(flags)
      const leaseTtlMs = parseDuration(flags.leaseTtl, '--lease-ttl')
      if (leaseTtlMs < 300) throw new UsageError('--lease-ttl: must be at least 300ms')
      const leaseRenewMs = flags.leaseRenew === undefined ? undefined : parseDuration(flags.leaseRenew, '--lease-renew')
      if (leaseRenewMs !== undefined && (leaseRenewMs < 50 || leaseRenewMs > leaseTtlMs / 2))
        throw new UsageError(
          `--lease-renew: must be between 50ms and half the lease TTL (${leaseTtlMs / 2} ms), got "${flags.leaseRenew}"`,
        )
      const rolloutTimeoutMs = parseDuration(flags.rolloutTimeout, '--rollout-timeout')
      if (rolloutTimeoutMs < 100) throw new UsageError('--rollout-timeout: must be at least 100ms')
      // the reconciler runtime (NATS, isomorphic-git, pino, prom-client) loads only when this command runs
      const { runReconciler } = await import('../main.js')
      const { level, format } = logSettings(self)
      const http = parseHostPort(flags.http, '--http')
      const running = await runReconciler({
        ...(level ? { logLevel: level } : {}),
        ...(format ? { logFormat: format } : {}),
        repo: flags.repo,
        branch: flags.branch,
        path: flags.path,
        intervalMs,
        http,
        nats: natsServers(flags.nats),
        natsAuth,
        cacheDir: flags.cacheDir ?? defaultCacheDir(),
        webhookSecretFile: flags.webhookSecretFile,
        ...(flags.signingKey ? { signingKeyFile: flags.signingKey } : {}),
        ...(flags.insecureWebhook ? { insecureWebhook: true } : {}),
        allowEmpty: flags.allowEmpty ?? false,
        defaultZone: flags.defaultZone,
        id: flags.id,
        leaseTtlMs,
        ...(leaseRenewMs ? { leaseRenewMs } : {}),
        rolloutTimeoutMs,
        ...(replicas ? { replicas } : {}),
        handleSignals: true,
      }).catch((err: NodeJS.ErrnoException) => {
        if (err?.code === 'SigningKeyError') throw new UsageError(err.message)
        if (err?.code === 'EADDRINUSE')
          throw new UsageError(
            `--http ${flags.http}: the address is already in use (pick another with --http or ZONEGATE_HTTP, or stop the other process)`,
          )
        throw err
      })
      await running.done
    })
  withExamples(cmd, [
    'zonegate reconciler --repo ./gitops --interval 30s',
    'zonegate reconciler --repo https://git.example.com/platform/mesh.git --branch main --path clusters/prod',
    'ZONEGATE_REPO=/srv/gitops NATS_URL=nats://nats-1:4222,nats://nats-2:4222 LOG_FORMAT=pretty zonegate reconciler',
  ])
}
