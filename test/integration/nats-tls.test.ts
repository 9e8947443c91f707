import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initAuth, issueToken } from '../../cli/auth-store.js'
import { runCli } from '../helpers/cli.js'
import { createMeshCa } from '../helpers/mesh-ca.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'

/**
 * TLS to NATS with client certificates (`--nats-ca/--nats-cert/--nats-key`) together with a token (`--creds`):
 * nats-server runs `zonegate auth init`'s configuration plus a `tls {}` block with `verify: true`, and the built
 * CLI connects with the flags (or their environment variables). Without the client certificate, or with a CA that
 * did not sign the server's certificate, the connection fails with a usage error (exit 2) naming the URL.
 */
let dir: string
let nats: NatsServer
const f = (name: string) => join(dir, name)

const zonegate = (args: string[], env: Record<string, string> = {}) => runCli(args, { env })

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'zonegate-nats-tls-'))
  const ca = await createMeshCa('nats')
  const other = await createMeshCa('other')
  const server = await ca.issueServer(['127.0.0.1', 'localhost'])
  const client = await ca.issueServer(['zonegate-cli'])
  await writeFile(f('ca.pem'), ca.certPem)
  await writeFile(f('other-ca.pem'), other.certPem)
  await writeFile(f('server.pem'), server.cert)
  await writeFile(f('server-key.pem'), server.key, { mode: 0o600 })
  await writeFile(f('client.pem'), client.cert)
  await writeFile(f('client-key.pem'), client.key, { mode: 0o600 })
  const auth = join(dir, 'auth')
  await initAuth(auth, { storeDir: f('store') })
  const { creds } = await issueToken(auth, { scope: 'viewer', validForMs: 600_000 })
  await writeFile(f('viewer.creds'), creds, { mode: 0o600 })
  await writeFile(
    join(auth, 'tls.conf'),
    [
      `jetstream { store_dir: ${JSON.stringify(f('store'))} }`,
      'include "nats-auth.conf"',
      `tls { cert_file: ${JSON.stringify(f('server.pem'))}, key_file: ${JSON.stringify(f('server-key.pem'))}, ca_file: ${JSON.stringify(f('ca.pem'))}, verify: true, timeout: 2 }`,
      '',
    ].join('\n'),
  )
  nats = await startNatsServer({ configFile: join(auth, 'tls.conf'), storeDir: f('store') })
}, 30_000)

afterAll(async () => {
  await nats?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('nats tls', () => {
  it('nats tls - CA, client certificate and token from flags: the command connects', async () => {
    const r = await zonegate([
      'status',
      '--nats',
      `tls://127.0.0.1:${nats.port}`,
      '--nats-ca',
      f('ca.pem'),
      '--nats-cert',
      f('client.pem'),
      '--nats-key',
      f('client-key.pem'),
      '--creds',
      f('viewer.creds'),
    ])
    // connected and read the (empty) status: exit 1 "not ready", not 2 "cannot connect"
    expect(r.stderr).toMatch(/not ready: no reconciler has written a status yet/)
    expect(r.code).toBe(1)
  })

  it('nats tls - the same from the environment (ZONEGATE_NATS_CA/CERT/KEY, NATS_CREDS, NATS_URL)', async () => {
    const r = await zonegate(['status'], {
      NATS_URL: `tls://127.0.0.1:${nats.port}`,
      ZONEGATE_NATS_CA: f('ca.pem'),
      ZONEGATE_NATS_CERT: f('client.pem'),
      ZONEGATE_NATS_KEY: f('client-key.pem'),
      NATS_CREDS: f('viewer.creds'),
    })
    expect(r.stderr).toMatch(/not ready/)
    expect(r.code).toBe(1)
  })

  it('nats tls - without the client certificate, or trusting another CA, the connection fails (exit 2)', async () => {
    const base = ['status', '--nats', `tls://127.0.0.1:${nats.port}`, '--creds', f('viewer.creds')]
    const noCert = await zonegate([...base, '--nats-ca', f('ca.pem')])
    expect(noCert.code).toBe(2)
    expect(noCert.stderr).toMatch(/127\.0\.0\.1/)
    const wrongCa = await zonegate([
      ...base,
      '--nats-ca',
      f('other-ca.pem'),
      '--nats-cert',
      f('client.pem'),
      '--nats-key',
      f('client-key.pem'),
    ])
    expect(wrongCa.code).toBe(2)
    const missing = await zonegate([...base, '--nats-ca', f('nope.pem')])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain(`--nats-ca ${f('nope.pem')}: cannot read the file (no such file)`)
  })
})
