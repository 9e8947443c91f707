import { execFile } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Objm } from '@nats-io/obj'
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EgressHandle, runEgress } from '../../egress/main.js'
import type { RunningReconciler } from '../../reconciler/main.js'
import { type Bus, connectBus } from '../../reconciler/transport/nats-bus.js'
import { publishZoneTable } from '../../reconciler/transport/nats-publisher.js'
import type { RolloutRejectedEvent, ZonegateEvent } from '../../schemas/events.js'
import {
  generateSigningKey,
  loadSigningKey,
  signTable,
  signTableHead,
  type TableSigner,
  verifyTableHeadSignature,
  verifyTableSignature,
} from '../../schemas/signing.js'
import { rolloutSubjects, TABLE_BODIES_BUCKET, tableKey } from '../../schemas/subjects.js'
import type { PublishedZoneTable, ZoneTable } from '../../schemas/table.js'
import { encodeTableBody, type TableHead } from '../../schemas/table-transport.js'
import { startUpstream, tlsConnect, type Upstream } from '../helpers/egress-fixtures.js'
import { createGitRepo, type GitRepo } from '../helpers/git-repo.js'
import { largeTable } from '../helpers/large-table.js'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'
import { freePort, type RunningProcess, repoRoot, startProcess, waitForPort } from '../helpers/procfile.js'
import { captureLogger, egressYaml, ingressYaml, MESH, startReconciler, tempDir } from '../helpers/reconciler-world.js'
import { buildTable, svcRoute } from '../helpers/table.js'
import { waitUntil } from '../helpers/wait.js'

/**
 * Signed tables end to end (docs/decisions/010-signed-tables.md): a real reconciler with `--signing-key` signs
 * what it publishes; three egresses pinning its public key (two in-process, one `zonegate egress` process
 * configured through ZONEGATE_TRUSTED_KEY) serve it. A client that can write the tables bucket but lacks the
 * signing key — unsigned tables, tables signed by its own key, a forged signature, a genuine table with its
 * routes altered, a replayed older genuine table (also after deleting the key), a forged or re-pointed
 * large-table head — is refused by every egress with a `rejected` event naming the reason, and traffic stays
 * where the reconciler sent it.
 */
const exec = promisify(execFile)
const CLI = join(repoRoot, 'dist/cli/main.js')
const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })
const SNI = 'svc{mesh=default}'

let nats: NatsServer
let a: Upstream
let b: Upstream
let evil: Upstream
let dir: { path: string; remove(): Promise<void> }
let repo: GitRepo
let reconciler: RunningReconciler
let attacker: Bus
let watcher: NatsConnection
let sub: Subscription
let keyFile: string
let publicKey: string
let signer: TableSigner
const intruder = loadSigningKey(generateSigningKey().seed)
/** Another trusted key (the one being rotated out): trusted, but the forger does not have it either. */
const retired = loadSigningKey(generateSigningKey().seed)
const events: ZonegateEvent[] = []
const egresses: EgressHandle[] = []
let proc: RunningProcess
const ports: number[] = []
const INSTANCES = ['e1', 'e2', 'p3']

const EGRESS = egressYaml('zone-a', 10002, 'ze-a')

/** Where each egress sends a new connection for the route (its upstream's name line). */
const answers = () => Promise.all(ports.map(async (p) => (await tlsConnect(p, SNI)).upstream))

async function current(): Promise<{ table: PublishedZoneTable | TableHead; revision: number }> {
  const e = await attacker.kv.tables.get(tableKey('zone-a'))
  if (e?.operation !== 'PUT') throw new Error('no table in KV')
  return { table: e.json(), revision: e.revision }
}

/** The attacker writes the zone's key (it has write access to the bucket, not the signing key). */
async function forge(value: unknown): Promise<void> {
  const { revision } = await current()
  await attacker.kv.tables.update(tableKey('zone-a'), JSON.stringify(value), revision)
}

const rejections = (generation: number) =>
  events.filter(
    (e): e is RolloutRejectedEvent =>
      e.type === 'rollout.rejected' && (e as RolloutRejectedEvent).generation === generation,
  )

/** Waits until every egress instance reported a rejection of `generation` (after `since` events), returns them. */
async function everyEgressRejects(generation: number, since: number): Promise<RolloutRejectedEvent[]> {
  const got = () => rejections(generation).filter((e) => events.indexOf(e) >= since)
  try {
    // generous: the shared test machine can starve the egress process for seconds
    return await waitUntil(
      () => (INSTANCES.every((i) => got().some((e) => e.instance === i)) ? got() : undefined),
      40_000,
    )
  } catch {
    const seen = events
      .slice(since)
      .map(
        (e) =>
          `${e.type} ${(e as RolloutRejectedEvent).instance ?? ''} ${(e as RolloutRejectedEvent).generation ?? ''}`,
      )
    throw new Error(
      `not every egress rejected generation ${generation}; since then: ${seen.join(', ') || 'nothing'}; p3: ${proc.output().slice(-2000)}`,
    )
  }
}

/** A table for zone-a routing the service to `port` (digest correct), as a forger would write it. */
function forgedTable(generation: number, port: number): PublishedZoneTable {
  return buildTable([svcRoute(port)], {
    egresses: [{ name: 'ze-a', address: '127.0.0.1', port: 10002 }],
    generation,
    revision: `main@sha1:${'f'.repeat(40)}`,
  }) as PublishedZoneTable
}

beforeAll(async () => {
  // max_payload 64 KiB: a 1,000-route table travels as head + object-store body (decision 008)
  ;[a, b, evil, nats] = await Promise.all([
    startUpstream('A'),
    startUpstream('B'),
    startUpstream('EVIL'),
    startNatsServer({ config: 'max_payload: 65536\n' }),
  ])
  dir = await tempDir('signed-tables-')
  keyFile = join(dir.path, 'reconciler.nk')
  // the CLI: generate prints only the public key; the seed file is private; a second generate is refused
  const gen = await exec('node', [CLI, 'signing-key', 'generate', '--out', keyFile])
  publicKey = gen.stdout.trim()
  expect(publicKey).toMatch(/^A[A-Z2-7]{55}$/)
  expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
  expect((await exec('node', [CLI, 'signing-key', 'public', keyFile])).stdout.trim()).toBe(publicKey)
  await expect(exec('node', [CLI, 'signing-key', 'generate', '--out', keyFile])).rejects.toMatchObject({ code: 2 })
  signer = loadSigningKey(await readFile(keyFile, 'utf8'))

  repo = await createGitRepo({
    files: { 'meshes/default.yaml': MESH, 'zones/zone-a.yaml': EGRESS, 'zones/zone-b.yaml': ingressYaml(a.port) },
  })
  reconciler = await startReconciler({
    repo: repo.dir,
    nats: nats.url,
    cacheDir: join(dir.path, 'cache'),
    signingKeyFile: keyFile,
  })
  await reconciler.trigger()
  attacker = await connectBus({ servers: [nats.url], name: 'bucket-writer-without-the-key', log: silent })
  watcher = await connect({ servers: nats.url })
  sub = watcher.subscribe(rolloutSubjects('zone-a'), {
    callback: (_e, m) => {
      events.push(m.json())
    },
  })
}, 60_000)

afterAll(async () => {
  for (const e of egresses) await e.shutdown()
  await proc?.stop()
  sub?.unsubscribe()
  await watcher?.close()
  await attacker?.close()
  await reconciler?.stop()
  await nats?.stop()
  await Promise.all([a?.close(), b?.close(), evil?.close()])
  await repo?.remove()
  await dir?.remove()
})

describe('signed tables', { timeout: 150_000 }, () => {
  it('signed tables - the reconciler signs with --signing-key; egresses pinning its key serve the table', async () => {
    const { table } = await current()
    const t = table as PublishedZoneTable
    expect(t).toMatchObject({ generation: 1, signature: { alg: 'ed25519', key: publicKey } })
    expect(verifyTableSignature(t, [publicKey])).toEqual({ ok: true, key: publicKey })
    expect(verifyTableSignature(t, [intruder.publicKey]).ok).toBe(false)

    for (const instance of ['e1', 'e2']) {
      const e = runEgress({
        nats: { servers: [nats.url], heartbeatMs: 300 },
        zone: 'zone-a',
        name: 'ze-a',
        instance,
        listen: { host: '127.0.0.1', port: 0 },
        admin: false,
        trustedKeys: [retired.publicKey, publicKey], // two keys, as during a rotation
        logger: silent,
        graceMs: 300,
      })
      egresses.push(e)
      ports.push((await e.ready).listen.port)
    }
    const port = await freePort()
    proc = startProcess(
      {
        name: 'egress',
        index: 0,
        command: `node ${CLI} egress --zone zone-a --name ze-a --instance p3 --grace 300ms --workers 1`,
      },
      { port, env: { ZONEGATE_LISTEN: `127.0.0.1:${port}`, NATS_URL: nats.url, ZONEGATE_TRUSTED_KEY: publicKey } },
    )
    await waitForPort('127.0.0.1', port, 15_000)
    ports.push(port)
    expect(await answers()).toEqual(['A', 'A', 'A'])
    expect(proc.output()).toMatch(/tables must be signed by a trusted key/)
  })

  const forgeries: [string, () => unknown, RegExp][] = [
    ['an unsigned table', () => forgedTable(50, evil.port), /^unsigned: /],
    ['a table signed by its own key', () => signTable(forgedTable(51, evil.port), intruder), /^untrusted-key: /],
    [
      "a table claiming the reconciler's key with its own signature",
      () => {
        const t = signTable(forgedTable(52, evil.port), intruder)
        return { ...t, signature: { ...t.signature!, key: publicKey } }
      },
      /^bad-signature: /,
    ],
  ]
  it.each(forgeries)(
    'signed tables - a bucket writer without the key writes %s: every egress rejects it, traffic unchanged',
    async (_n, make, reason) => {
      const value = make() as PublishedZoneTable
      const since = events.length
      await forge(value)
      const got = await everyEgressRejects(value.generation, since)
      for (const e of got) expect(e.reason).toMatch(reason)
      expect(await answers()).toEqual(['A', 'A', 'A'])
    },
  )

  it('signed tables - the genuine signature over altered routes does not verify', async () => {
    // what the forger can do with a real signed envelope from history: re-point it, keep the signature
    const genuine = (await reconcilerTable(1)) as PublishedZoneTable
    expect(genuine.signature?.key).toBe(publicKey)
    const altered = forgedTable(54, evil.port)
    const since = events.length
    await forge({ ...altered, signature: genuine.signature })
    const got = await everyEgressRejects(54, since)
    for (const e of got) expect(e.reason).toMatch(/^bad-signature: /)
    expect(await answers()).toEqual(['A', 'A', 'A'])
  })

  it('signed tables - a replayed older genuine table is rejected, also after the key was deleted', async () => {
    // the reconciler publishes generation 2 (its CAS sees the forged writes: it re-reads KV and goes on)
    await repo.commit({ 'zones/zone-b.yaml': ingressYaml(b.port) })
    await waitUntil(
      async () => {
        const r = await reconciler.trigger()
        return r?.result === 'applied' && r.zones.some((z) => z.zone === 'zone-a') ? r : undefined
      },
      20_000,
      'generation 2 published',
    )
    const g2 = (await current()).table as PublishedZoneTable
    expect(g2.signature?.key).toBe(publicKey)
    await waitUntil(async () => ((await answers()).every((x) => x === 'B') ? true : undefined), 15_000, 'all on B')
    const g1 = (await reconcilerTable(1)) as PublishedZoneTable
    expect(g1.generation).toBeLessThan(g2.generation)

    let since = events.length
    await forge(g1)
    for (const e of await everyEgressRejects(g1.generation, since)) expect(e.reason).toMatch(/^stale-generation: /)
    since = events.length
    await forge(g2) // the same generation again
    for (const e of await everyEgressRejects(g2.generation, since)) expect(e.reason).toMatch(/^stale-generation: /)
    expect(await answers()).toEqual(['B', 'B', 'B'])

    // deleting the key first does not reopen the door (with trusted keys a delete keeps the generation floor)
    const { revision } = await current()
    await attacker.kv.tables.delete(tableKey('zone-a'), { previousSeq: revision })
    since = events.length
    await attacker.kv.tables.create(tableKey('zone-a'), JSON.stringify(g1))
    for (const e of await everyEgressRejects(g1.generation, since)) expect(e.reason).toMatch(/^stale-generation: /)
    expect(await answers()).toEqual(['B', 'B', 'B'])
  })

  it('signed tables - large tables: a signed head is served; a forged or re-pointed head is refused before its body is used', async () => {
    // the reconciler's publisher with the signing key: body in the object store, signed head in KV
    const extra = forgedTable(1, a.port).routes
    const big = signTable(largeTable(1000, { generation: 60, extra }), signer)
    const { revision } = await current()
    await publishZoneTable(attacker, big, revision, signer)
    const head = (await current()).table as TableHead
    expect(head.kind).toBe('ZoneEgressTableRef')
    expect(verifyTableHeadSignature(head, [publicKey]).ok).toBe(true)
    await waitUntil(async () => ((await answers()).every((x) => x === 'A') ? true : undefined), 20_000, 'large on A')

    // a forger uploads its own body (routes to EVIL) and writes a head for it: unsigned, then signed by itself
    const evilBig = largeTable(1000, { generation: 61, extra: forgedTable(1, evil.port).routes })
    const name = 'zone-a.table.61'
    const enc = encodeTableBody(JSON.stringify(evilBig), evilBig, { bucket: TABLE_BODIES_BUCKET, name })
    await (await new Objm(attacker.js).open(TABLE_BODIES_BUCKET)).putBlob({ name }, enc.body)
    let since = events.length
    await forge(enc.head)
    for (const e of await everyEgressRejects(61, since)) expect(e.reason).toMatch(/^unsigned: /)
    since = events.length
    await forge({ ...signTableHead(enc.head, intruder), generation: 62 })
    for (const e of await everyEgressRejects(62, since)) expect(e.reason).toMatch(/^(untrusted-key|bad-signature): /)

    // the genuine signed head re-pointed at the forger's body: the head's signature no longer verifies
    since = events.length
    await forge({ ...head, generation: 63, object: enc.head.object })
    for (const e of await everyEgressRejects(63, since)) expect(e.reason).toMatch(/^bad-signature: /)
    expect(await answers()).toEqual(['A', 'A', 'A'])
  })

  it('signed tables - `zonegate compile --signing-key` makes a --static file an egress with --trusted-key serves; unsigned stops it', async () => {
    const folder = join(dir.path, 'gitops')
    const { mkdir } = await import('node:fs/promises')
    await mkdir(join(folder, 'zones'), { recursive: true })
    await writeFile(join(folder, 'mesh.yaml'), MESH)
    await writeFile(join(folder, 'zones', 'a.yaml'), EGRESS)
    await writeFile(join(folder, 'zones', 'b.yaml'), ingressYaml(a.port))
    const signedFile = join(dir.path, 'signed.json')
    const unsignedFile = join(dir.path, 'unsigned-compile.json')
    const args = [CLI, 'compile', folder, '--zone', 'zone-a', '-o', 'json']
    await writeFile(signedFile, (await exec('node', [...args, '--signing-key', keyFile])).stdout)
    await writeFile(unsignedFile, (await exec('node', args)).stdout)
    expect(JSON.parse(await readFile(signedFile, 'utf8'))).toMatchObject({ signature: { key: publicKey } })
    const ok = runEgress({
      staticFile: signedFile,
      listen: { host: '127.0.0.1', port: 0 },
      admin: false,
      trustedKeys: [publicKey],
      logger: silent,
    })
    expect((await tlsConnect((await ok.ready).listen.port, SNI)).upstream).toBe('A')
    await ok.shutdown()
    const refused = runEgress({ staticFile: unsignedFile, admin: false, trustedKeys: [publicKey], logger: silent })
    expect(await refused.done).toMatchObject({
      code: 1,
      error: expect.stringMatching(/first table rejected: unsigned/),
    })
  })

  it('signed tables - an egress without a trusted key warns loudly at start and keeps working unsigned', async () => {
    const { log, lines } = captureLogger()
    const e = runEgress({ staticFile: join(dir.path, 'missing.json'), admin: false, logger: log })
    await e.done
    const warn = lines.find((l) => l.level === 40 && /NO TRUSTED KEY CONFIGURED/.test(String(l.msg)))
    expect(warn).toBeDefined()
    const f = join(dir.path, 'unsigned.json')
    await writeFile(f, JSON.stringify(forgedTable(1, a.port)))
    const ok = runEgress({ staticFile: f, listen: { host: '127.0.0.1', port: 0 }, admin: false, logger: silent })
    const { listen } = await ok.ready
    expect((await tlsConnect(listen.port, SNI)).upstream).toBe('A')
    await ok.shutdown()
  })
})

/** A PUT of the zone's key from KV history with that generation (what a bucket reader can copy). */
async function reconcilerTable(generation: number): Promise<ZoneTable> {
  const it = await attacker.kv.tables.history({ key: tableKey('zone-a') })
  for await (const e of it) {
    if (e.operation !== 'PUT') continue
    const v = e.json<ZoneTable>()
    if (v.generation === generation && v.signature?.key === publicKey && v.kind === 'ZoneEgressTable') return v
  }
  throw new Error(`no signed generation ${generation} in history`)
}
