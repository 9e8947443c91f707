import type { EgressCertReply, EgressCertRequest } from '../../schemas/certs.js'
import { certSubject } from '../../schemas/subjects.js'
import { validateEgressCertRequestShape } from '../../schemas/validators.js'
import { CsrError, type LoadedCa, MAX_CSR_PEM_BYTES, signEgressCsr } from './pki/index.js'

/**
 * The certificate service's decision, without NATS: one request in, one reply out (docs/mtls.md). The transport
 * (reconciler/transport/cert-server.ts) only moves bytes. Never throws.
 */

/** Largest request accepted (the CSR bound plus room for the other fields). */
export const MAX_CERT_REQUEST_BYTES = MAX_CSR_PEM_BYTES + 4096

/** What the service knows about a mesh with mTLS on (from the last applied revision). */
export interface ActiveMeshCa {
  mesh: string
  backend: string
  /** The enabled CA, ready to sign. */
  ca: LoadedCa
  /** PEM CA certificates returned as `caCerts`. */
  caCerts: string[]
  /** From `dpCert.rotation.expiration` (default 24h). */
  lifetimeMs: number
}

export interface CertRequestContext {
  /** The mesh's active CA; undefined when the mesh is unknown or has mTLS off in the applied revision. */
  lookup(mesh: string): ActiveMeshCa | undefined
  /** False until a revision has been applied since start (the service knows no mesh yet). */
  ready: boolean
  now(): Date
}

const fail = (error: string): EgressCertReply => ({ ok: false, error })

/**
 * Handles one request received on `subject`: bounded size, JSON, schema (`EgressCertRequest`), the subject's zone
 * token equal to `zone`, the mesh known with mTLS on, then the CSR verified and signed (signEgressCsr). Every
 * refusal is `{ok:false, error}` with a clear message; `request` is returned (when it parsed) for logging.
 */
export async function handleCertRequest(
  subject: string,
  data: Uint8Array,
  ctx: CertRequestContext,
): Promise<{ reply: EgressCertReply; request?: EgressCertRequest }> {
  if (data.byteLength > MAX_CERT_REQUEST_BYTES)
    return { reply: fail(`request is larger than ${MAX_CERT_REQUEST_BYTES} bytes`) }
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder().decode(data))
  } catch {
    return { reply: fail('request is not JSON') }
  }
  const problems = validateEgressCertRequestShape(value)
  if (problems.length > 0)
    return { reply: fail(`invalid request: ${problems.map((p) => `${p.path || '/'} ${p.message}`).join('; ')}`) }
  const request = value as EgressCertRequest
  if (certSubject(request.zone) !== subject)
    return { request, reply: fail(`zone "${request.zone}" does not match the subject ${subject}`) }
  if (!ctx.ready) return { request, reply: fail('the reconciler has not applied a revision yet; retry later') }
  const mesh = ctx.lookup(request.mesh)
  if (!mesh) return { request, reply: fail(`mesh "${request.mesh}" does not exist or has mTLS disabled`) }
  try {
    const issued = await signEgressCsr({
      ca: mesh.ca,
      mesh: request.mesh,
      csr: request.csr,
      lifetimeMs: mesh.lifetimeMs,
      now: ctx.now(),
    })
    return {
      request,
      reply: { ok: true, cert: issued.cert, caCerts: mesh.caCerts, notAfter: issued.notAfter.toISOString() },
    }
  } catch (err) {
    if (err instanceof CsrError) return { request, reply: fail(err.message) }
    return { request, reply: fail('signing failed') }
  }
}
