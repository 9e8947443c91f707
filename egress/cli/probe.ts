import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import {
  Exit,
  formatStructured,
  type OutputFormat,
  outputOption,
  parseDuration,
  parseHostPort,
  UsageError,
  withExamples,
} from '../../lib/common.js'
import { formatProbeResult, probe } from '../probe/probe.js'

interface ProbeFlags {
  sni: string
  timeout: string
  output: OutputFormat
  insecure?: boolean
  verify?: boolean
  ca?: string
  alpn?: string
  request: boolean
  cert?: string
  key?: string
  send?: string
}

function readPem(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`)
  }
}

/**
 * Registers `zonegate probe --sni S HOST:PORT`: one TLS connection with that SNI; prints what answered
 * (text, or the ProbeResult as JSON); exit 0 when a TLS handshake completed, 1 otherwise, 2 on bad flags.
 */
export function registerProbeCommand(program: Command): void {
  const cmd = program
    .command('probe')
    .description('open a TLS connection with an SNI (through an egress) and report what answered')
    .argument('<host:port>', 'where to connect, e.g. an egress listener 127.0.0.1:15200')
    .requiredOption('--sni <name>', 'the SNI to send, e.g. "orders{mesh=default}"')
    .option('--timeout <duration>', 'budget for connect + handshake + answer', '5s')
    .addOption(outputOption())
    .option('--insecure', 'do not verify the peer certificate (the default)')
    .option('--verify', 'verify the peer certificate (system store or --ca); a failure exits 1')
    .option('--ca <file>', 'PEM CA bundle for --verify (with --cert: the mesh CA)')
    .option('--cert <file>', 'present this client certificate (PEM), as a mesh sidecar: ALPN kuma, mesh mTLS')
    .option('--key <file>', 'the private key of --cert (PEM)')
    .option('--send <text>', 'after the handshake send TEXT (\\n for newlines) instead of GET /, print the reply')
    .option('--alpn <protocols>', 'ALPN protocols to offer, comma separated (e.g. h2,http/1.1)')
    .option('--no-request', 'only handshake; do not send GET / to learn which upstream answered')
    .action(async (target: string, flags: ProbeFlags) => {
      if (flags.verify && flags.insecure) throw new UsageError('--verify and --insecure exclude each other')
      const { host, port } = parseHostPort(target, 'HOST:PORT')
      if ((flags.cert === undefined) !== (flags.key === undefined)) throw new UsageError('--cert and --key go together')
      const ca = flags.ca ? readPem(flags.ca, '--ca') : undefined
      const cert = flags.cert ? readPem(flags.cert, '--cert') : undefined
      const key = flags.key ? readPem(flags.key, '--key') : undefined
      const result = await probe({
        host,
        port,
        sni: flags.sni,
        timeoutMs: parseDuration(flags.timeout, '--timeout'),
        verify: flags.verify === true,
        ca,
        alpn: flags.alpn
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean),
        request: flags.request,
        ...(cert && key ? { cert, key } : {}),
        ...(flags.send !== undefined ? { send: flags.send.replace(/\\n/g, '\n') } : {}),
      })
      if (flags.output === 'text') process.stdout.write(`${formatProbeResult(result).join('\n')}\n`)
      else if (flags.output === 'json') process.stdout.write(`${JSON.stringify(result)}\n`)
      else process.stdout.write(await formatStructured(result, 'yaml'))
      process.exitCode = result.handshake ? Exit.Ok : Exit.Failed
    })
  withExamples(cmd, [
    "zonegate probe --sni 'billing{mesh=default}' 127.0.0.1:15200     # exit 0 handshake, 1 not",
    "zonegate probe --sni 'httpbin{mesh=default}' 127.0.0.1:15200 -o json",
  ])
}
