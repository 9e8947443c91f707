import { execFile } from 'node:child_process'
import { rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { initAuth, issueToken, revokeUser, rotateSigningKey } from '../../cli/auth-store.js'
import { type NatsAuthOptions, natsConnectOptions } from '../../lib/nats-connect.js'
import type { Scope } from '../../schemas/nats-permissions.js'
import { type NatsServer, startNatsServer } from './nats-server.js'
import { repoRoot } from './procfile.js'

/**
 * A real nats-server with zonegate's decentralized auth on (`zonegate auth init`'s keys and nats-auth.conf in
 * the server's own temporary folder), and tokens minted like `zonegate token` does.
 */
export interface AuthNats extends NatsServer {
  authDir: string
  /** Mints a token, writes its .creds file; returns the path and the connection options the CLI would use. */
  token(
    scope: Scope,
    opts?: { zone?: string; validForMs?: number; name?: string },
  ): Promise<{ file: string; user: string; auth: NatsAuthOptions }>
  /** `zonegate auth revoke --user U` then a reload of the server. */
  revoke(user: string): Promise<void>
  /** `zonegate auth rotate [--finish]` then a reload of the server. */
  rotate(finish: boolean): Promise<void>
}

let counter = 0

export async function startAuthNats(): Promise<AuthNats> {
  const { mkdtemp } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const authDir = await mkdtemp(join(tmpdir(), 'zonegate-auth-'))
  const storeDir = join(authDir, 'store')
  const { server: serverConfig } = await initAuth(authDir, { storeDir })
  const server = await startNatsServer({ configFile: serverConfig, storeDir })
  const stopServer = server.stop
  return Object.assign(server, {
    authDir,
    async token(scope: Scope, opts: { zone?: string; validForMs?: number; name?: string } = {}) {
      const { creds, token } = await issueToken(authDir, {
        scope,
        ...(opts.zone ? { zone: opts.zone } : {}),
        validForMs: opts.validForMs ?? 3_600_000,
        ...(opts.name ? { name: opts.name } : {}),
      })
      const file = join(authDir, `t${++counter}-${token.name}.creds`)
      await writeFile(file, creds, { mode: 0o600 })
      return { file, user: token.user, auth: await natsConnectOptions({ creds: file }) }
    },
    async stop() {
      await stopServer()
      await rm(authDir, { recursive: true, force: true })
    },
    async rotate(finish: boolean) {
      await rotateSigningKey(authDir, { finish })
      await server.reload()
    },
    async revoke(user: string) {
      await revokeUser(authDir, user)
      await server.reload()
    },
  })
}

/** Runs scripts/demo-auth.sh on `authDir` (keys kept when present, fresh tokens) as `npm start` does. */
export function demoAuth(authDir: string, storeDir?: string): Promise<void> {
  return new Promise((done, fail) => {
    execFile(
      'bash',
      [resolve(repoRoot, 'scripts/demo-auth.sh'), authDir, ...(storeDir ? [storeDir] : [])],
      { timeout: 60_000 },
      (err, _stdout, stderr) => (err ? fail(new Error(`scripts/demo-auth.sh failed: ${stderr}`)) : done()),
    )
  })
}
