import { constants } from 'node:crypto'
import tls, { type SecureContext } from 'node:tls'
import type { Logger } from 'pino'
import { type Actor, createActor, fromPromise } from 'xstate'
import type { EgressCertReply, EgressCertRequest } from '../../schemas/certs.js'
import type { MeshIdentities } from '../proxy/mtls.js'
import {
  acceptIssuedCert,
  createEgressCsr,
  type EgressKey,
  generateEgressKey,
  importEgressKey,
  type MeshCert,
} from './egress-key.js'
import { identityMachine } from './identity.machine.js'
import { keyFile, loadCerts, loadKey, saveCert, saveKey, saveKeyIfAbsent } from './identity-store.js'

/**
 * The egress's mesh identities: one key pair per egress (made here, kept in `--state-dir`), one certificate
 * per mesh of the served table, each looked after by an `identityMachine` actor (request with a CSR, renew
 * at ~2/3 of the lifetime, retry with backoff). New handshakes read `contextFor(mesh)`; installing a
 * certificate replaces that context in one assignment, so rotation never touches open connections.
 * The private key is never logged and never shown in `/config_dump`.
 */

export interface EgressIdentityDeps {
  zone: string
  egress: string
  instance: string
  /** Where the key and certificates are kept (mode 0600); without it they live in memory only. */
  stateDir?: string
  /** Sends a certificate request and resolves with the untrusted reply; absent: no renewal (static mode). */
  request?(req: EgressCertRequest): Promise<unknown>
  log: Logger
  /**
   * Called whenever the context of a mesh is installed (with what it was made of) or dropped (undefined): the
   * primary of an egress with `--workers` hands it on to its data-plane workers (egress/workers/pool.ts).
   */
  onMaterial?(mesh: string, material: MeshMaterial | undefined): void
}

/** What a mesh's server context is made of: the egress key, the mesh certificate and the mesh's CA certificates. */
export interface MeshMaterial {
  key: string
  cert: string
  ca: readonly string[]
}

/**
 * The server-side context for a mesh's terminate-mtls handshakes. No session tickets, no resumption: every
 * caller connection is verified in full against the mesh CA in force (docs/decisions/011). Throws on unusable PEM.
 */
export function meshSecureContext(m: MeshMaterial): SecureContext {
  return tls.createSecureContext({
    key: m.key,
    cert: m.cert,
    ca: [...m.ca],
    secureOptions: constants.SSL_OP_NO_TICKET,
  })
}

/** The identity part of `/config_dump` (no key material). */
export interface IdentityState {
  key: { algorithm: string; stored: string | null } | null
  meshes: Record<
    string,
    {
      state: string
      serial: string | null
      notBefore: string | null
      notAfter: string | null
      renewAt: string | null
      attempt: number
      lastError: string | null
    }
  >
}

const MAX_REPLY_CERTS = 16

/** Checks the shape of an untrusted reply. Pure. */
export function parseCertReply(value: unknown): EgressCertReply {
  const v = value as Partial<Record<string, unknown>> | null
  if (v === null || typeof v !== 'object') throw new Error('certificate reply is not an object')
  if (v.ok === false) return { ok: false, error: String(v.error ?? 'no reason given').slice(0, 500) }
  if (
    v.ok !== true ||
    typeof v.cert !== 'string' ||
    v.cert.length > 65536 ||
    !Array.isArray(v.caCerts) ||
    v.caCerts.length > MAX_REPLY_CERTS ||
    !v.caCerts.every((c) => typeof c === 'string' && c.length <= 65536)
  )
    throw new Error('certificate reply does not have the EgressCertReply shape')
  return { ok: true, cert: v.cert, caCerts: v.caCerts as string[], notAfter: String(v.notAfter ?? '') }
}

export class EgressIdentity implements MeshIdentities {
  /** Resolves once the key is loaded or made and the saved certificates are read. */
  readonly ready: Promise<void>
  private key: EgressKey | undefined
  private readonly log: Logger
  private readonly saved = new Map<string, MeshCert>()
  private readonly certs = new Map<string, MeshCert>()
  private cas: ReadonlyMap<string, readonly string[]> = new Map()
  private readonly contexts = new Map<string, SecureContext>()
  private readonly actors = new Map<string, Actor<typeof identityMachine>>()
  private readonly csrs = new Map<string, Promise<string>>()
  private stopped = false

  constructor(private readonly deps: EgressIdentityDeps) {
    this.log = deps.log.child({ component: 'identity' })
    this.ready = this.init()
    this.ready.catch(() => {})
  }

  private async init(): Promise<void> {
    const { stateDir, zone, egress } = this.deps
    let replaceSaved = false
    if (stateDir !== undefined) {
      const pem = await loadKey(stateDir, zone, egress).catch((err: unknown) => {
        this.log.warn({ err }, 'saved egress key unreadable; making a new one')
        return undefined
      })
      if (pem !== undefined) {
        try {
          this.key = await importEgressKey(pem)
          this.log.info({ file: keyFile(stateDir, zone, egress) }, 'egress key loaded')
        } catch (err) {
          this.log.warn({ err: new Error((err as Error).message) }, 'saved egress key invalid; making a new one')
          replaceSaved = true
        }
      }
    }
    if (this.key === undefined) {
      let made = await generateEgressKey()
      if (stateDir !== undefined) {
        // replicas sharing the state dir share one key: the first one saved wins, the others load it
        const save = replaceSaved
          ? saveKey(stateDir, zone, egress, made.privateKeyPem).then(() => true)
          : saveKeyIfAbsent(stateDir, zone, egress, made.privateKeyPem)
        const saved = await save.catch((err: unknown) => {
          this.log.warn({ err }, 'egress key not saved to the state dir')
          return undefined
        })
        if (saved === false) {
          const theirs = await loadKey(stateDir, zone, egress).catch(() => undefined)
          if (theirs !== undefined) {
            try {
              made = await importEgressKey(theirs)
              this.log.info({ file: keyFile(stateDir, zone, egress) }, 'egress key loaded (saved by a replica)')
            } catch (err) {
              this.log.warn({ err: new Error((err as Error).message) }, 'replica key invalid; using this one unsaved')
            }
          }
        } else this.log.info({ stored: saved ? keyFile(stateDir, zone, egress) : null }, 'egress key made')
      } else this.log.info({ stored: null }, 'egress key made')
      this.key = made
    }
    if (stateDir !== undefined) {
      const { certs, problems } = await loadCerts(stateDir, zone, egress)
      for (const p of problems) this.log.warn({ problem: p }, 'saved identity certificate skipped')
      for (const c of certs) {
        try {
          this.saved.set(c.mesh, acceptIssuedCert(this.key, c.mesh, c.cert, c.caCerts, Date.now()))
        } catch (err) {
          this.log.warn({ mesh: c.mesh, problem: (err as Error).message }, 'saved identity certificate not used')
        }
      }
    }
  }

  /** The context for new handshakes of `mesh` (identity + the table's CA of the mesh), or undefined. */
  contextFor(mesh: string): SecureContext | undefined {
    return this.contexts.get(mesh)
  }

  /**
   * Follows the served table's meshes (name → CA PEMs): starts an actor per new mesh (with its saved or
   * last certificate), stops those of meshes gone, and rebuilds contexts whose CA changed. Call after `ready`.
   */
  sync(meshCas: ReadonlyMap<string, readonly string[]>): void {
    if (this.stopped) return
    const before = this.cas
    this.cas = meshCas
    for (const [mesh, actor] of this.actors) {
      if (meshCas.has(mesh)) continue
      actor.send({ type: 'stop' })
      this.actors.delete(mesh)
      if (this.contexts.delete(mesh)) this.deps.onMaterial?.(mesh, undefined)
    }
    for (const mesh of meshCas.keys()) {
      const known = this.certs.get(mesh) ?? this.saved.get(mesh)
      if (known !== undefined && known.notAfter > Date.now()) {
        if (!this.contexts.has(mesh) || !sameList(before.get(mesh), meshCas.get(mesh))) this.install(known, false)
      }
      if (!this.actors.has(mesh) && this.deps.request !== undefined) this.startActor(mesh, known)
    }
  }

  /** Asks every mesh that is backing off to try now (NATS is back). */
  renewPending(): void {
    for (const actor of this.actors.values()) if (actor.getSnapshot().value === 'backoff') actor.send({ type: 'renew' })
  }

  /** Forces a renewal of every mesh's certificate now (tests, operators). */
  renewAll(): void {
    for (const actor of this.actors.values()) actor.send({ type: 'renew' })
  }

  /** The certificate serving `mesh` now. */
  certOf(mesh: string): MeshCert | undefined {
    return this.certs.get(mesh)
  }

  state(): IdentityState {
    const { stateDir, zone, egress } = this.deps
    const meshes: IdentityState['meshes'] = {}
    for (const mesh of this.cas.keys()) {
      const snap = this.actors.get(mesh)?.getSnapshot()
      const c = this.certs.get(mesh)
      const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString())
      meshes[mesh] = {
        state: snap ? String(snap.value) : c ? 'saved' : 'none',
        serial: c?.serial ?? null,
        notBefore: iso(c?.notBefore),
        notAfter: iso(c?.notAfter),
        renewAt: snap?.value === 'valid' ? iso(snap.context.renewAt) : null,
        attempt: snap?.context.attempt ?? 0,
        lastError: snap?.context.lastError ?? null,
      }
    }
    return {
      key: this.key
        ? { algorithm: 'ECDSA P-256', stored: stateDir === undefined ? null : keyFile(stateDir, zone, egress) }
        : null,
      meshes,
    }
  }

  stop(): void {
    this.stopped = true
    for (const a of this.actors.values()) a.stop()
    this.actors.clear()
  }

  private startActor(mesh: string, cert: MeshCert | undefined): void {
    const machine = identityMachine.provide({
      actors: {
        requestCert: fromPromise<MeshCert, { mesh: string }>(({ input }) => this.requestCert(input.mesh)),
      },
      actions: {
        installCert: (_, c: MeshCert) => this.install(c, true),
      },
    })
    const actor = createActor(machine, { input: { mesh, ...(cert ? { cert } : {}) } })
    let last = ''
    actor.subscribe((snap) => {
      const v = String(snap.value)
      if (v === last) return
      last = v
      if (v === 'backoff')
        this.log.warn(
          { mesh, attempt: snap.context.attempt, err: new Error(snap.context.lastError ?? '?') },
          'identity certificate request failed; retrying',
        )
      else if (v === 'requesting') this.log.debug({ mesh }, 'requesting identity certificate')
    })
    this.actors.set(mesh, actor)
    actor.start()
  }

  private async requestCert(mesh: string): Promise<MeshCert> {
    await this.ready
    const key = this.key!
    if (this.deps.request === undefined) throw new Error('no certificate source')
    let csr = this.csrs.get(mesh)
    if (csr === undefined) {
      csr = createEgressCsr(key, mesh)
      this.csrs.set(mesh, csr)
    }
    const req: EgressCertRequest = {
      zone: this.deps.zone,
      egress: this.deps.egress,
      instance: this.deps.instance,
      mesh,
      csr: await csr,
    }
    const reply = parseCertReply(await this.deps.request(req))
    if (!reply.ok) throw new Error(`certificate refused: ${reply.error}`)
    return acceptIssuedCert(key, mesh, reply.cert, reply.caCerts, Date.now())
  }

  /** Makes `cert` the identity of its mesh for new handshakes; `persist` saves it to the state dir. */
  private install(cert: MeshCert, persist: boolean): void {
    const ca = this.cas.get(cert.mesh)
    if (ca === undefined || this.key === undefined) {
      this.certs.set(cert.mesh, cert)
      return
    }
    try {
      const material: MeshMaterial = { key: this.key.privateKeyPem, cert: cert.cert, ca: [...ca] }
      const ctx = meshSecureContext(material)
      this.certs.set(cert.mesh, cert)
      this.contexts.set(cert.mesh, ctx)
      this.deps.onMaterial?.(cert.mesh, material)
      this.log.info(
        { mesh: cert.mesh, serial: cert.serial, notAfter: new Date(cert.notAfter).toISOString() },
        'identity certificate installed',
      )
    } catch (err) {
      // OpenSSL's message names the problem, never the key bytes
      this.log.error({ mesh: cert.mesh, err: new Error((err as Error).message) }, 'identity certificate unusable')
      return
    }
    const dir = this.deps.stateDir
    if (persist && dir !== undefined) {
      saveCert(dir, this.deps.zone, this.deps.egress, cert).catch((err: unknown) =>
        this.log.warn({ err, mesh: cert.mesh }, 'identity certificate not saved to the state dir'),
      )
    }
  }
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true
  if (a === undefined || b === undefined || a.length !== b.length) return false
  return a.every((x, i) => x === b[i])
}
