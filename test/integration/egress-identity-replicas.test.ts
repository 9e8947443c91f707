import { createPublicKey } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as x509 from '@peculiar/x509'
import pino from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { EgressIdentity } from '../../egress/identity/egress-identity.js'
import { keyFile } from '../../egress/identity/identity-store.js'
import type { EgressCertRequest } from '../../schemas/certs.js'

// Replicas of one egress (`foreman -m egress=3`) share `--state-dir`: they must end up with one key, so that the
// certificate any of them saved matches the key every one of them loads after a restart with NATS down.

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const spkiOfCsr = (pem: string) =>
  Buffer.from(new x509.Pkcs10CertificateRequest(pem).publicKey.rawData).toString('base64')
const spkiOfKeyFile = (path: string) =>
  createPublicKey(readFileSync(path, 'utf8')).export({ type: 'spki', format: 'der' }).toString('base64')

async function startReplicas(dir: string, n: number) {
  const csrs: string[] = []
  const ids = Array.from(
    { length: n },
    (_, i) =>
      new EgressIdentity({
        zone: 'zone-a',
        egress: 'ze-a',
        instance: `i${i}`,
        stateDir: dir,
        log: pino({ level: 'silent' }),
        request: (req: EgressCertRequest) => {
          csrs.push(req.csr)
          return new Promise<unknown>(() => {}) // no reconciler: the CSR is all this test reads
        },
      }),
  )
  await Promise.all(ids.map((id) => id.ready))
  for (const id of ids) id.sync(new Map([['default', []]]))
  await vi.waitFor(() => expect(csrs).toHaveLength(n), { timeout: 10_000 })
  for (const id of ids) id.stop()
  return csrs
}

describe('egress replicas sharing a state dir', () => {
  it('all use the one key saved first, and the key file is private', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zg-identity-'))
    dirs.push(dir)
    const csrs = await startReplicas(dir, 4)
    const saved = spkiOfKeyFile(keyFile(dir, 'zone-a', 'ze-a'))
    expect(new Set(csrs.map(spkiOfCsr))).toEqual(new Set([saved]))
    expect(statSync(keyFile(dir, 'zone-a', 'ze-a')).mode & 0o777).toBe(0o600)
    // a restart keeps that key
    const again = await startReplicas(dir, 2)
    expect(new Set(again.map(spkiOfCsr))).toEqual(new Set([saved]))
  })

  it('replaces a saved key file that is not a key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zg-identity-'))
    dirs.push(dir)
    writeFileSync(keyFile(dir, 'zone-a', 'ze-a'), 'not a key\n', { mode: 0o600 })
    const [csr] = await startReplicas(dir, 1)
    expect(spkiOfKeyFile(keyFile(dir, 'zone-a', 'ze-a'))).toBe(spkiOfCsr(csr!))
  })
})
