import { spawnSync } from 'node:child_process'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { jetstream } from '@nats-io/jetstream'
import { Kvm } from '@nats-io/kv'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CaMaterial, createBuiltinCa, createEgressCsr } from '../../reconciler/core/pki/index.js'
import type { EgressCertReply, EgressCertRequest } from '../../schemas/certs.js'
import type { ZonegateEvent } from '../../schemas/events.js'
import { Bucket, caKey, certSubject } from '../../schemas/subjects.js'
import type { PublishedZoneTable } from '../../schemas/table.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { egressYaml, externalYaml, probe, startReconciler, tableHistory, tempDir } from '../helpers/reconciler-world.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * Mesh CAs with a real nats-server and a real Git repository: the builtin CA is created once in KV `zonegate-ca`
 * and reused after a restart; the certificate service signs egress CSRs (and refuses bad requests with
 * `{ok:false}`); changing the enabled CA while mTLS stays on is refused with Kuma's message and publishes nothing.
 */

const cli = join(resolve(import.meta.dirname, '../..'), 'dist/cli/main.js')

const meshYaml = (backend: string) => `type: Mesh
name: default
mtls:
  enabledBackend: ${backend}
  backends:
    - name: ${backend}
      type: builtin
      dpCert:
        rotation:
          expiration: 2h
      conf:
        caCert:
          RSAbits: 2048
          expiration: 1y
`
const PLAIN = 'type: Mesh\nname: plain\n'
const PROVIDED = `type: Mesh
name: prov
mtls:
  enabledBackend: own
  backends:
    - name: own
      type: provided
      conf:
        cert:
          file: meshes/prov/ca.pem
        key:
          file: meshes/prov/ca.key
`
const PERMIT = `type: MeshTrafficPermission
name: web-to-shared
mesh: default
spec:
  targetRef:
    kind: MeshService
    name: shared
  from:
    - targetRef:
        kind: MeshSubset
        tags:
          kuma.io/service: web
      default:
        action: Allow
`

describe('mesh CA and certificate service', () => {
  let server: NatsServer
  let repo: GitRepo
  let dir: Awaited<ReturnType<typeof tempDir>>
  let p: Awaited<ReturnType<typeof probe>>
  const events: { subject: string; event: ZonegateEvent }[] = []

  let provided: CaMaterial
  beforeAll(async () => {
    server = await startNatsServer()
    dir = await tempDir('zonegate-ca-')
    provided = await createBuiltinCa({ mesh: 'prov', rsaBits: 2048, lifetimeMs: 24 * 3600_000, now: new Date() })
    repo = await createGitRepo({
      dir: join(dir.path, 'repo.git'),
      bare: true,
      files: {
        'meshes/default.yaml': meshYaml('ca-1'),
        'meshes/plain.yaml': PLAIN,
        'zones/zone-a.yaml': egressYaml('zone-a', 10002),
        'external/shared.yaml': externalYaml('shared', '127.0.0.1:18080'),
        'policies/web-to-shared.yaml': PERMIT,
        'meshes/prov.yaml': PROVIDED,
        'meshes/prov/ca.pem': provided.cert,
        'meshes/prov/ca.key': provided.key,
      },
    })
    p = await probe(server.url)
    const sub = p.nc.subscribe('zonegate.events.commit.>')
    void (async () => {
      for await (const m of sub) events.push({ subject: m.subject, event: m.json<ZonegateEvent>() })
    })()
  })
  afterAll(async () => {
    await p?.close()
    await server?.stop()
    await dir?.remove()
  })

  const caBucket = async () => new Kvm(jetstream(p.nc)).open(Bucket.Ca)
  const storedCa = async (backend: string) => {
    const e = await (await caBucket()).get(caKey('default', backend))
    return e?.operation === 'PUT' ? e.json<{ cert: string; key: string }>() : undefined
  }
  const ask = async (subjectZone: string, body: Partial<EgressCertRequest> | string): Promise<EgressCertReply> => {
    const m = await p.nc.request(certSubject(subjectZone), typeof body === 'string' ? body : JSON.stringify(body), {
      timeout: 10_000,
    })
    return m.json<EgressCertReply>()
  }
  const request = async (mesh = 'default', zone = 'zone-a') => ({
    zone,
    egress: 'ze-zone-a',
    instance: 'i-1',
    mesh,
    csr: (await createEgressCsr(mesh)).csr,
  })

  it('mesh CA - builtin CA created once in KV, in the table, reused after a restart; certificates chain to it', async () => {
    const sha1 = await repo.head()
    const r1 = await startReconciler({ repo: repo.dir, nats: server.url, cacheDir: dir.path })
    let first: { cert: string; key: string } | undefined
    try {
      await waitUntil(() => r1.status().lastAppliedRevision === `main@sha1:${sha1}`, 20_000, 'first pass')
      first = await storedCa('ca-1')
      expect(first?.cert).toMatch(/^-----BEGIN CERTIFICATE-----/)
      const ca = new X509Certificate(first?.cert as string)
      expect(ca.ca).toBe(true)
      expect(ca.subjectAltName).toBe('URI:spiffe://default')
      // The key is in the CA bucket only: the published table carries the public certificate, never the key.
      const table = (await tableHistory(p.tables, 'zone-a'))[0]?.table as PublishedZoneTable
      expect(table.meshes).toEqual([{ name: 'default', caCerts: [first?.cert] }])
      expect(JSON.stringify(table)).not.toContain('PRIVATE KEY')
      expect(table.routes.find((r) => r.service === 'shared')?.allow).toEqual(['web'])

      const reply = await ask('zone-a', await request())
      expect(reply.ok).toBe(true)
      if (!reply.ok) return
      const leaf = new X509Certificate(reply.cert)
      expect(leaf.subjectAltName).toBe('URI:spiffe://default/zone-egress, URI:kuma://kuma.io/service/zone-egress')
      expect(leaf.checkIssued(ca) && leaf.verify(ca.publicKey)).toBe(true)
      expect(reply.caCerts).toEqual([first?.cert])
      // dpCert.rotation.expiration: 2h (give or take the test's own duration).
      const lifetime = new Date(reply.notAfter).getTime() - Date.now()
      expect(lifetime).toBeGreaterThan(2 * 3600_000 - 120_000)
      expect(lifetime).toBeLessThanOrEqual(2 * 3600_000)
      expect(r1.lines.some((l) => JSON.stringify(l).includes('PRIVATE KEY'))).toBe(false)

      // `zonegate cert issue` (the built CLI) signs a workload identity with the same CA, read from KV.
      const out = join(dir.path, 'web-cert')
      const run = spawnSync(
        process.execPath,
        [
          cli,
          'cert',
          'issue',
          '--mesh',
          'default',
          '--service',
          'web',
          '--out',
          out,
          '--valid-for',
          '1h',
          '--nats',
          server.url,
        ],
        { encoding: 'utf8', timeout: 30_000 },
      )
      expect(run.status, run.stderr).toBe(0)
      for (const f of ['cert.pem', 'key.pem', 'ca.pem']) expect(statSync(join(out, f)).mode & 0o777).toBe(0o600)
      const web = new X509Certificate(readFileSync(join(out, 'cert.pem'), 'utf8'))
      expect(web.subjectAltName).toBe('URI:spiffe://default/web, URI:kuma://kuma.io/service/web')
      expect(web.verify(ca.publicKey)).toBe(true)
      expect(web.checkPrivateKey(createPrivateKey(readFileSync(join(out, 'key.pem'), 'utf8')))).toBe(true)
      expect(readFileSync(join(out, 'ca.pem'), 'utf8')).toBe(first?.cert)
      const plain = spawnSync(
        process.execPath,
        [cli, 'cert', 'issue', '--mesh', 'plain', '--service', 'web', '--out', out, '--nats', server.url],
        {
          encoding: 'utf8',
          timeout: 30_000,
        },
      )
      expect(plain.status).toBe(1)
      expect(plain.stderr).toMatch(/mesh "plain" has no mTLS/)

      // A provided CA (files in the repository): the service signs with it; nothing of it goes to KV.
      const prov = await ask('zone-a', await request('prov'))
      expect(prov.ok).toBe(true)
      if (prov.ok) {
        const pca = new X509Certificate(provided.cert)
        expect(new X509Certificate(prov.cert).verify(pca.publicKey)).toBe(true)
        expect(prov.caCerts).toEqual([provided.cert])
        // Kuma's default dpCert lifetime: 24h.
        const lifetime = new Date(prov.notAfter).getTime() - Date.now()
        expect(lifetime).toBeGreaterThan(24 * 3600_000 - 120_000)
      }
      expect(await (await caBucket()).get(caKey('prov', 'own'))).toBeNull()
      // `cert issue --path` signs from the provided CA in a folder, without NATS.
      const folder = join(dir.path, 'checkout')
      mkdirSync(join(folder, 'meshes/prov'), { recursive: true })
      writeFileSync(join(folder, 'meshes/prov.yaml'), PROVIDED)
      writeFileSync(join(folder, 'meshes/prov/ca.pem'), provided.cert)
      writeFileSync(join(folder, 'meshes/prov/ca.key'), provided.key)
      const out2 = join(dir.path, 'prov-cert')
      const byPath = spawnSync(
        process.execPath,
        [
          cli,
          'cert',
          'issue',
          '--mesh',
          'prov',
          '--service',
          'api',
          '--out',
          out2,
          '--path',
          folder,
          '--nats',
          'nats://127.0.0.1:1',
        ],
        { encoding: 'utf8', timeout: 30_000 },
      )
      expect(byPath.status, byPath.stderr).toBe(0)
      const api = new X509Certificate(readFileSync(join(out2, 'cert.pem'), 'utf8'))
      expect(api.subjectAltName).toBe('URI:spiffe://prov/api, URI:kuma://kuma.io/service/api')
      expect(api.verify(new X509Certificate(provided.cert).publicKey)).toBe(true)
    } finally {
      await r1.stop()
    }

    const r2 = await startReconciler({ repo: repo.dir, nats: server.url, cacheDir: dir.path })
    try {
      await waitUntil(() => r2.status().lastAppliedRevision === `main@sha1:${sha1}` && r2.status().conditions, 20_000)
      const reply = await waitUntil(
        async () => {
          const r = await ask('zone-a', await request())
          return r.ok ? r : undefined
        },
        20_000,
        'certificate after restart',
      )
      expect(await storedCa('ca-1')).toEqual(first)
      const ca = new X509Certificate(first?.cert as string)
      expect(new X509Certificate(reply.cert).verify(ca.publicKey)).toBe(true)
      // Same CA, same tables: the restart published nothing.
      expect((await tableHistory(p.tables, 'zone-a')).length).toBe(1)
    } finally {
      await r2.stop()
    }
  }, 90_000)

  it('certificate service - wrong zone, unknown mesh, mesh without mTLS, malformed CSR and bad JSON get {ok:false}', async () => {
    const sha = await repo.head()
    const r = await startReconciler({ repo: repo.dir, nats: server.url, cacheDir: dir.path })
    try {
      await waitUntil(() => r.status().lastAppliedRevision === `main@sha1:${sha}`, 20_000, 'pass')
      await waitUntil(async () => ((await ask('zone-a', await request())).ok ? true : undefined), 20_000, 'ready')
      const cases: [string, Partial<EgressCertRequest> | string, RegExp][] = [
        ['zone-a', await request('default', 'zone-b'), /does not match the subject/],
        ['zone-a', await request('nope'), /mesh "nope" does not exist or has mTLS disabled/],
        ['zone-a', await request('plain'), /mesh "plain" does not exist or has mTLS disabled/],
        [
          'zone-a',
          {
            ...(await request()),
            csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
          },
          /not a valid PKCS#10/,
        ],
        ['zone-a', { ...(await request()), csr: 'not a csr' }, /invalid request: \/csr/],
        ['zone-a', { zone: 'zone-a' }, /invalid request/],
        ['zone-a', '{not json', /not JSON/],
        ['zone-a', JSON.stringify({ ...(await request()), csr: 'x'.repeat(40_000) }), /larger than/],
      ]
      for (const [zone, body, error] of cases) {
        const reply = await ask(zone, body)
        expect(reply.ok, String(error)).toBe(false)
        if (!reply.ok) expect(reply.error).toMatch(error)
      }
    } finally {
      await r.stop()
    }
  }, 90_000)

  it('mesh CA - changing the enabled CA while mTLS stays on is refused: invalid event, nothing published', async () => {
    // allowEmpty: turning mTLS off empties zone-a (a mesh without mTLS routes nothing).
    const r = await startReconciler({ repo: repo.dir, nats: server.url, cacheDir: dir.path, allowEmpty: true })
    try {
      const before = await repo.head()
      await waitUntil(() => r.status().lastAppliedRevision === `main@sha1:${before}`, 20_000, 'pass')
      const history = (await tableHistory(p.tables, 'zone-a')).length
      const sha = await repo.commit({ 'meshes/default.yaml': meshYaml('ca-2') }, 'swap the CA in one go')
      await r.trigger()
      const invalid = await waitUntil(
        () => events.find((e) => e.subject === `zonegate.events.commit.${sha}.invalid`),
        20_000,
        'invalid event',
      )
      const violations = (invalid.event as { violations?: { path: string; message: string; file: string }[] })
        .violations
      expect(violations).toEqual([
        expect.objectContaining({
          file: 'meshes/default.yaml',
          path: 'mtls.enabledBackend',
          message: expect.stringMatching(
            /^Changing CA when mTLS is enabled is forbidden\. Disable mTLS first and then change the CA/,
          ),
        }),
      ])
      expect((await tableHistory(p.tables, 'zone-a')).length).toBe(history)
      expect(await storedCa('ca-2')).toBeUndefined()
      expect(r.status().lastAppliedRevision).toBe(`main@sha1:${before}`)
      // Two commits work: mTLS off first, then the new CA.
      const off = await repo.commit({ 'meshes/default.yaml': 'type: Mesh\nname: default\n' }, 'mTLS off')
      await r.trigger()
      await waitUntil(() => r.status().lastAppliedRevision === `main@sha1:${off}`, 20_000, 'mTLS off applied')
      const on = await repo.commit({ 'meshes/default.yaml': meshYaml('ca-2') }, 'new CA')
      await r.trigger()
      await waitUntil(() => r.status().lastAppliedRevision === `main@sha1:${on}`, 20_000, 'new CA applied')
      expect((await storedCa('ca-2'))?.cert).toMatch(/BEGIN CERTIFICATE/)
    } finally {
      await r.stop()
    }
  }, 90_000)
})
