import { Kvm } from '@nats-io/kv'
import { connect } from '@nats-io/transport-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js'

describe('nats-server helper', () => {
  let server: NatsServer
  beforeAll(async () => {
    server = await startNatsServer()
  })
  afterAll(async () => {
    await server.stop()
  })

  it('nats-server helper - starts JetStream on a random port and keeps data across a restart', async () => {
    expect(server.port).toBeGreaterThan(0)
    const nc = await connect({ servers: server.url })
    const kv = await new Kvm(nc).create('helper-check', { history: 1 })
    await kv.put('k', 'v1')
    await nc.close()
    await server.kill()
    await server.restart()
    const nc2 = await connect({ servers: server.url })
    const kv2 = await new Kvm(nc2).open('helper-check')
    expect((await kv2.get('k'))?.string()).toBe('v1')
    expect(nc2.info?.version).toMatch(/^2\./)
    await nc2.close()
  })
})
