import net, { type AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { classifyGreeting, connectBudgetMs, natsHostPort, probeNatsUrl } from './nats-probe.js'

describe('nats probe', () => {
  it('natsHostPort - schemes, bare host:port, default port', () => {
    expect(natsHostPort('nats://127.0.0.1:4333')).toEqual({ host: '127.0.0.1', port: 4333 })
    expect(natsHostPort('tls://u:p@nats.example:1')).toEqual({ host: 'nats.example', port: 1 })
    expect(natsHostPort('127.0.0.1:5')).toEqual({ host: '127.0.0.1', port: 5 })
    expect(natsHostPort('nats://[::1]')).toEqual({ host: '::1', port: 4222 })
  })

  it('classifyGreeting - INFO is NATS, a prefix of it is incomplete, anything else is quoted', () => {
    expect(classifyGreeting('INFO {"server_id":"x"}\r\n')).toEqual({ kind: 'nats' })
    expect(classifyGreeting('IN')).toEqual({ kind: 'incomplete' })
    expect(classifyGreeting('HTTP/1.1 400 Bad Request\r\nx')).toEqual({
      kind: 'other',
      shown: 'HTTP/1.1 400 Bad Request',
    })
    expect(classifyGreeting('SSH-2.0-\u0001')).toEqual({ kind: 'other', shown: 'SSH-2.0-?' })
  })

  it('connectBudgetMs - the --timeout, at most 5 s', () => {
    expect(connectBudgetMs(1000)).toBe(1000)
    expect(connectBudgetMs(60_000)).toBe(5000)
    expect(connectBudgetMs(undefined)).toBe(5000)
  })

  it('probeNatsUrl - a silent listener fails within the budget, a greeting peer is named, INFO passes', async () => {
    const servers: net.Server[] = []
    const listen = async (onConn: (s: net.Socket) => void) => {
      const s = net.createServer(onConn)
      servers.push(s)
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
      return `nats://127.0.0.1:${(s.address() as AddressInfo).port}`
    }
    try {
      const silent = await listen(() => {})
      const ssh = await listen((c) => c.write('SSH-2.0-OpenSSH\r\n'))
      const nats = await listen((c) => c.write('INFO {"server_id":"t"}\r\n'))
      const t0 = Date.now()
      expect(await probeNatsUrl(silent, 300)).toMatch(/sent nothing within 0\.3s/)
      expect(Date.now() - t0).toBeLessThan(2000)
      expect(await probeNatsUrl(ssh, 1000)).toMatch(/answered "SSH-2\.0-OpenSSH"/)
      expect(await probeNatsUrl(nats, 1000)).toBeUndefined()
    } finally {
      for (const s of servers) s.close()
    }
  })
})
