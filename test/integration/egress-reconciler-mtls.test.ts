import { spawnSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keyFile } from '../../egress/identity/identity-store.js'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import { Bucket, caKey } from '../../schemas/subjects.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import type { Issued } from '../helpers/mesh-ca.js'
import { type External, meshCall, startPlainExternal } from '../helpers/mtls-fixtures.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { waitFor } from '../helpers/procfile.js'
import { captureLogger, egressYaml, probe, startReconciler, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * The egress and the REAL reconciler certificate service, end to end: a reconciler (in process, on a Git
 * repository, over a real nats-server) creates the mesh's builtin CA in KV `zonegate-ca` and serves
 * `zonegate.cmd.cert.*`; an egress in NATS mode makes its key, sends its CSR there and terminates with the
 * certificate it gets back; the callers' workload certificates come from the built `zonegate cert issue`
 * (CA read from KV). An allowed caller is relayed to a real plain external service; a caller without a
 * MeshTrafficPermission is refused.
 */

const cli = join(resolve(import.meta.dirname, '../..'), 'dist/cli/main.js')

const MESH = `type: Mesh
name: default
mtls:
  enabledBackend: ca-1
  backends:
    - name: ca-1
      type: builtin
      dpCert:
        rotation:
          expiration: 1h
      conf:
        caCert:
          RSAbits: 2048
          expiration: 1y
routing:
  zoneEgress: true
`
const PERMIT = `type: MeshTrafficPermission
name: web-to-httpbin
mesh: default
spec:
  targetRef:
    kind: MeshService
    name: httpbin
  from:
    - targetRef:
        kind: MeshSubset
        tags:
          kuma.io/service: web
      default:
        action: Allow
`
const external = (port: number) => `type: ExternalService
name: httpbin
mesh: default
tags:
  kuma.io/service: httpbin
networking:
  address: 127.0.0.1:${port}
`
const SNI = 'httpbin{mesh=default}'

let nats: NatsServer
let repo: GitRepo
let dir: Awaited<ReturnType<typeof tempDir>>
let upstream: External
let reconciler: Awaited<ReturnType<typeof startReconciler>>
let egress: EgressHandle
let port: number
const egressLog = captureLogger()

/** `zonegate cert issue` (built CLI) for `service`; returns its files. */
function issue(service: string): Issued & { ca: string } {
  const out = join(dir.path, `cert-${service}`)
  const run = spawnSync(
    process.execPath,
    [cli, 'cert', 'issue', '--mesh', 'default', '--service', service, '--out', out, '--nats', nats.url],
    { encoding: 'utf8', timeout: 30_000 },
  )
  if (run.status !== 0) throw new Error(`cert issue ${service}: exit ${run.status}: ${run.stderr}`)
  const read = (f: string) => readFileSync(join(out, f), 'utf8')
  return { cert: read('cert.pem'), key: read('key.pem'), ca: read('ca.pem') } as Issued & { ca: string }
}

beforeAll(async () => {
  nats = await startNatsServer()
  dir = await tempDir('zonegate-egress-rec-')
  upstream = await startPlainExternal('httpbin')
  repo = await createGitRepo({
    dir: join(dir.path, 'repo.git'),
    bare: true,
    files: {
      'meshes/default.yaml': MESH,
      'zones/zone-a.yaml': egressYaml('zone-a', 10002),
      'external/httpbin.yaml': external(upstream.port),
      'policies/web-to-httpbin.yaml': PERMIT,
    },
  })
  reconciler = await startReconciler({ repo: repo.dir, nats: nats.url, cacheDir: dir.path })
  const sha = await repo.head()
  await waitUntil(() => reconciler.status().lastAppliedRevision === `main@sha1:${sha}`, 30_000, 'first pass')
  egress = runEgress({
    nats: { servers: [nats.url], stateDir: join(dir.path, 'egress-state'), heartbeatMs: 500 },
    zone: 'zone-a',
    name: 'ze-zone-a',
    instance: 'e1',
    listen: { host: '127.0.0.1', port: 0 },
    admin: false,
    logger: egressLog.log,
    graceMs: 500,
    certRequestTimeoutMs: 5000,
  })
  port = (await egress.ready).listen.port
  await waitFor('egress identity from the reconciler', () => egress.identity.certOf('default') !== undefined, 30_000)
}, 90_000)

afterAll(async () => {
  await egress?.shutdown()
  await reconciler?.stop()
  await nats?.stop()
  await upstream?.close()
  await dir?.remove()
})

describe('egress with the reconciler certificate service', () => {
  it('egress reconciler mtls - the egress identity is issued by the reconciler with the builtin CA kept in KV', async () => {
    const p = await probe(nats.url)
    try {
      const stored = await (await new Kvm(jetstream(p.nc)).open(Bucket.Ca)).get(caKey('default', 'ca-1'))
      const caPem = stored?.json<{ cert: string }>().cert as string
      const ca = new X509Certificate(caPem)
      const mine = egress.identity.certOf('default')!
      const leaf = new X509Certificate(mine.cert)
      expect(leaf.subjectAltName).toBe('URI:spiffe://default/zone-egress, URI:kuma://kuma.io/service/zone-egress')
      expect(leaf.checkIssued(ca) && leaf.verify(ca.publicKey)).toBe(true)
      // dpCert.rotation.expiration: 1h from issuance (notBefore is backdated for clock skew)
      expect(mine.notAfter - Date.now()).toBeLessThanOrEqual(3600_000)
      expect(mine.notAfter - Date.now()).toBeGreaterThan(3600_000 - 120_000)
      expect(
        reconciler.lines.some((l) => l.msg === 'egress certificate issued' && JSON.stringify(l).includes('ze-zone-a')),
      ).toBe(true)
      // the key stayed with the egress: nothing that went over NATS or into a log holds it
      const keyBody = readFileSync(keyFile(join(dir.path, 'egress-state'), 'zone-a', 'ze-zone-a'), 'utf8').split(
        '\n',
      )[1]!
      expect(JSON.stringify(reconciler.lines)).not.toContain(keyBody)
      expect(JSON.stringify(egressLog.lines)).not.toContain(keyBody)
    } finally {
      await p.close()
    }
  })

  it('egress reconciler mtls - a caller with a `zonegate cert issue` certificate is relayed; one without permission is refused', async () => {
    const web = issue('web')
    const billing = issue('billing')
    const allowed = await meshCall(port, SNI, web.ca, web, 'through the egress')
    expect(allowed).toMatchObject({
      answer: 'httpbin',
      echo: 'through the egress',
      alpn: 'kuma',
      authorized: true,
      egressSerial: egress.identity.certOf('default')!.serial,
    })
    expect(allowed.egressSan).toContain('URI:spiffe://default/zone-egress')
    const accepts = upstream.accepts
    const deniedBefore = egress.proxy!.stats.rejected.get('permission-denied') ?? 0
    const denied = await meshCall(port, SNI, billing.ca, billing, 'x')
    expect(denied.answer).toBeUndefined()
    expect(denied.error).toBeDefined()
    expect(upstream.accepts).toBe(accepts)
    expect(egress.proxy!.stats.rejected.get('permission-denied')).toBe(deniedBefore + 1)
  })
})
