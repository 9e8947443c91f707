import { availableParallelism, hostname } from 'node:os'
import { type Command, Option } from 'commander'
import {
  collectList,
  Exit,
  formatDuration,
  logSettings,
  natsServers,
  parseDuration,
  parseHostPort,
  UsageError,
  withExamples,
} from '../../lib/common.js'
import { natsConnectOptions, natsOptions } from '../../lib/nats-connect.js'
import { parseTrustedKeys } from '../../schemas/signing.js'
import { HEARTBEAT_INTERVAL_MS } from '../../schemas/subjects.js'
import { DEFAULT_GRACE_MS, DEFAULT_PROXY_OPTIONS } from '../proxy/proxy-options.js'
import { defaultInstanceId } from '../transport/heartbeat.js'

/**
 * `zonegate egress`: one egress process (docs/design.md §4–5): `--static FILE` (a table file, no NATS), or NATS
 * mode (`--zone Z --name N [--nats URL]... [--state-dir D]`: the zone's table from KV `zonegate-tables`).
 */
interface EgressFlags {
  creds?: string
  natsCa?: string
  natsCert?: string
  natsKey?: string
  static?: string
  listen?: string
  admin?: string
  name?: string
  zone?: string
  instance?: string
  stateDir?: string
  nats?: string[]
  helloTimeout: string
  connectTimeout: string
  idleTimeout: string
  drainPeriod: string
  dnsTtl: string
  dataPath: 'lean' | 'net'
  grace: string
  maxConnections: string
  workers?: string
  heartbeat: string
  trustedKey?: string[]
}

/** Adds the `egress` subcommand to the program. */
export function registerEgressCommand(program: Command): void {
  const cmd = program
    .command('egress')
    .description('run an egress: route TLS connections by SNI on a zone table (hot-swapped, no drops)')
    .option('--static <file>', 'serve the table envelope in FILE (no NATS); SIGHUP reloads it')
    .option(
      '--listen <host:port>',
      "listener (default: the table's egresses entry for --name; PORT overrides its port)",
    )
    .option('--admin <host:port>', "admin HTTP (default: 127.0.0.1:<the entry's adminPort>, else none)")
    .option('--name <name>', 'ZoneEgress name (selects the egresses entry)')
    .option('--zone <zone>', 'zone; a table for another zone is rejected (required in NATS mode)')
    .option('--instance <id>', 'instance id (default: $PS or $FOREMAN_WORKER_NAME, else <hostname>-<pid>)')
    .option(
      '--state-dir <dir>',
      'keep the egress key and mesh certificates here (mode 0600), and in NATS mode the last good table, to serve while NATS is down',
    )
  for (const o of natsOptions()) cmd.addOption(o)
  cmd
    .option(
      '--hello-timeout <duration>',
      'deadline for the whole ClientHello',
      formatDuration(DEFAULT_PROXY_OPTIONS.helloTimeoutMs),
    )
    .option(
      '--connect-timeout <duration>',
      'upstream connect timeout per attempt',
      formatDuration(DEFAULT_PROXY_OPTIONS.connectTimeoutMs),
    )
    .option(
      '--idle-timeout <duration>',
      'close relayed connections idle this long',
      formatDuration(DEFAULT_PROXY_OPTIONS.idleTimeoutMs),
    )
    .option(
      '--drain-period <duration>',
      'connections of a removed route are closed after this',
      formatDuration(DEFAULT_PROXY_OPTIONS.drainPeriodMs),
    )
    .option(
      '--dns-ttl <duration>',
      'keep the addresses of upstream host names this long (0: look them up for every connection)',
      formatDuration(DEFAULT_PROXY_OPTIONS.dnsTtlMs),
    )
    .addOption(
      new Option(
        '--data-path <path>',
        'how passthrough connections are relayed: lean (libuv handles, no net.Socket; falls back to net when this Node lacks them) or net',
      )
        .choices(['lean', 'net'])
        .default(DEFAULT_PROXY_OPTIONS.dataPath),
    )
    .option('--grace <duration>', 'on SIGTERM, wait this long for open connections', formatDuration(DEFAULT_GRACE_MS))
    .option(
      '--max-connections <n>',
      'concurrent connection cap (for the whole egress, shared out over the workers)',
      String(DEFAULT_PROXY_OPTIONS.maxConnections),
    )
    .option(
      '--workers <n>',
      'data-plane processes sharing the listener (default: the number of cores; 1: this process proxies itself)',
    )
    .option(
      '--heartbeat <duration>',
      'NATS mode: heartbeat period in KV zonegate-instances',
      formatDuration(HEARTBEAT_INTERVAL_MS),
    )
    .option(
      '--trusted-key <public-nkey>',
      "admit only tables signed by this key (the reconciler's `zonegate signing-key public`); repeatable or comma-separated, for rotation",
      collectList,
    )
    .action(async (flags: EgressFlags, self: Command) => {
      const natsMode = flags.static === undefined
      if (natsMode && (flags.zone === undefined || flags.name === undefined)) {
        throw new UsageError('NATS mode needs --zone and --name (or use --static FILE)')
      }
      let trustedKeys: string[]
      try {
        trustedKeys = parseTrustedKeys(flags.trustedKey ?? [])
      } catch (err) {
        throw new UsageError(`--trusted-key: ${(err as Error).message}`)
      }
      const maxConnections = Number(flags.maxConnections)
      if (!Number.isInteger(maxConnections) || maxConnections < 1) {
        throw new UsageError(`--max-connections: expected a positive integer, got "${flags.maxConnections}"`)
      }
      const workers = flags.workers === undefined ? availableParallelism() : Number(flags.workers)
      if (!Number.isInteger(workers) || workers < 1 || workers > 1024) {
        throw new UsageError(`--workers: expected an integer from 1 to 1024, got "${flags.workers}"`)
      }
      // Loaded here so other subcommands do not pay for pino, xstate and prom-client at start-up.
      const { runEgress } = await import('../main.js')
      const egress = runEgress({
        ...(natsMode
          ? {
              nats: {
                servers: natsServers(flags.nats),
                auth: await natsConnectOptions(flags),
                ...(flags.stateDir ? { stateDir: flags.stateDir } : {}),
                heartbeatMs: parseDuration(flags.heartbeat, '--heartbeat'),
              },
            }
          : { staticFile: flags.static, ...(flags.stateDir ? { identityDir: flags.stateDir } : {}) }),
        ...(flags.listen ? { listen: parseHostPort(flags.listen, '--listen') } : {}),
        ...(flags.admin ? { admin: parseHostPort(flags.admin, '--admin') } : {}),
        ...(flags.name ? { name: flags.name } : {}),
        ...(flags.zone ? { zone: flags.zone } : {}),
        instance: defaultInstanceId(process.env, hostname(), process.pid, flags.instance),
        ...(() => {
          const { level, format } = logSettings(self)
          return { ...(level ? { logLevel: level } : {}), ...(format ? { logFormat: format } : {}) }
        })(),
        proxy: {
          helloTimeoutMs: parseDuration(flags.helloTimeout, '--hello-timeout'),
          connectTimeoutMs: parseDuration(flags.connectTimeout, '--connect-timeout'),
          idleTimeoutMs: parseDuration(flags.idleTimeout, '--idle-timeout'),
          drainPeriodMs: parseDuration(flags.drainPeriod, '--drain-period'),
          dnsTtlMs: parseDuration(flags.dnsTtl, '--dns-ttl'),
          dataPath: flags.dataPath,
          maxConnections,
        },
        graceMs: parseDuration(flags.grace, '--grace'),
        workers,
        trustedKeys,
        signals: true,
      })
      const { code, error } = await egress.done
      // A listener that cannot bind is an I/O error: one plain line on stderr, exit 2.
      const bind = error === undefined ? null : /(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b.*?(\S+:\d+)\s*$/.exec(error)
      if (bind) {
        const why =
          bind[1] === 'EADDRINUSE'
            ? 'it is already in use'
            : bind[1] === 'EACCES'
              ? 'it needs privileges'
              : 'it is not local'
        process.stderr.write(
          `zonegate: cannot listen on ${bind[2]}: ${why} (pick another port with --listen/--admin or PORT, or stop the other process)\n`,
        )
        process.exitCode = Exit.Io
      } else process.exitCode = code
      // NATS mode: a client still retrying its first connection would keep the process alive.
      if (natsMode) setTimeout(() => process.exit(process.exitCode ?? code), 200).unref()
    })
  withExamples(cmd, [
    'zonegate egress --zone zone-a --name ze-a --listen 127.0.0.1:15200 --admin 127.0.0.1:15250',
    'zonegate egress --static table.json --name ze-a       # no NATS; SIGHUP reloads the file',
    'ZONEGATE_ZONE=zone-a ZONEGATE_NAME=ze-a NATS_URL=nats://nats:4222 zonegate egress',
    'zonegate egress --zone zone-a --name ze-a --trusted-key "$(zonegate signing-key public reconciler.nk)"',
  ])
}
