import { randomBytes } from 'node:crypto'
import { chmod, link, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeToken } from '../../schemas/subjects.js'
import type { MeshCert } from './egress-key.js'

/**
 * The egress identity on disk (`--state-dir`), so a restarted egress terminates mesh mTLS while NATS is
 * down: `<dir>/<zone>.<egress>.identity-key.pem` (the private key) and
 * `<dir>/<zone>.<egress>.<mesh>.identity-cert.json` (certificate, mesh CA, validity), all mode 0600, written
 * to a temp file and renamed (a reader never sees half a file). Names are keyed by zone and egress name, not
 * by instance id (which may change on restart); replicas sharing one directory share the key: the first to
 * start creates it (an exclusive create, `saveKeyIfAbsent`), the others load that one, so any replica's saved
 * certificate matches the key every replica serves with.
 */

const prefix = (zone: string, egress: string) => `${zone}.${encodeToken(egress)}.`
export const keyFile = (dir: string, zone: string, egress: string) =>
  join(dir, `${prefix(zone, egress)}identity-key.pem`)
export const certFile = (dir: string, zone: string, egress: string, mesh: string) =>
  join(dir, `${prefix(zone, egress)}${encodeToken(mesh)}.identity-cert.json`)

/**
 * Writes `text` to `path` with mode 0600 through a temp file, so a reader never sees half a file: renamed over
 * `path`, or with `exclusive` hard-linked to it, which fails with EEXIST when `path` exists (resolves false then).
 */
async function writePrivate(path: string, text: string, exclusive = false): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    await writeFile(tmp, text, { mode: 0o600 })
    await chmod(tmp, 0o600) // a umask cannot widen it, but an existing file keeps its mode otherwise
    if (exclusive) await link(tmp, path)
    else await rename(tmp, path)
    return true
  } catch (err) {
    if (exclusive && (err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  } finally {
    // after a rename the temp name is gone already; after a link (or a failure) it is removed here
    await rm(tmp, { force: true }).catch(() => {})
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** The saved private key PEM, or undefined. Rejects when the file exists but cannot be read. */
export function loadKey(dir: string, zone: string, egress: string): Promise<string | undefined> {
  return readOptional(keyFile(dir, zone, egress))
}

/** Saves the private key (mode 0600; the directory is created with mode 0700). */
export async function saveKey(dir: string, zone: string, egress: string, pem: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await writePrivate(keyFile(dir, zone, egress), pem)
}

/**
 * Saves the private key unless a key file exists already (mode 0600, exclusive: the temp file is hard-linked
 * to its name, which fails when another process got there first). Resolves false when a key was there.
 */
export async function saveKeyIfAbsent(dir: string, zone: string, egress: string, pem: string): Promise<boolean> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  return writePrivate(keyFile(dir, zone, egress), pem, true)
}

/** Saves one mesh's certificate (mode 0600). */
export async function saveCert(dir: string, zone: string, egress: string, cert: MeshCert): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await writePrivate(certFile(dir, zone, egress, cert.mesh), `${JSON.stringify(cert)}\n`)
}

/** Every saved certificate of this egress (unreadable or malformed files are skipped and reported). */
export async function loadCerts(
  dir: string,
  zone: string,
  egress: string,
): Promise<{ certs: MeshCert[]; problems: string[] }> {
  const p = prefix(zone, egress)
  const names = await readdir(dir).catch(() => [] as string[])
  const certs: MeshCert[] = []
  const problems: string[] = []
  for (const name of names.filter((n) => n.startsWith(p) && n.endsWith('.identity-cert.json'))) {
    try {
      const v = JSON.parse(await readFile(join(dir, name), 'utf8')) as MeshCert
      if (typeof v.mesh !== 'string' || typeof v.cert !== 'string' || !Array.isArray(v.caCerts))
        throw new Error('not an identity certificate file')
      certs.push(v)
    } catch (err) {
      problems.push(`${join(dir, name)}: ${(err as Error).message}`)
    }
  }
  return { certs, problems }
}
