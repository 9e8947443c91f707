import { describe, expect, it } from 'vitest'
import { natsServers, parseReplicas } from '../../lib/common.js'
import {
  bucketSettings,
  defaultReplicas,
  eventsStreamConfig,
  replicasMismatch,
} from '../../reconciler/transport/nats-bus.js'
import { layoutStreams } from '../../reconciler/transport/nats-migrate.js'
import { Bucket, EVENTS_STREAM } from '../../schemas/subjects.js'
import { clusterNodeConfig } from '../helpers/nats-cluster.js'

describe('nats layout (pure)', () => {
  it('nats layout - default replicas: 3 when the server names a cluster, else 1', () => {
    expect(defaultReplicas({ cluster: 'zg' })).toBe(3)
    expect(defaultReplicas({})).toBe(1)
    expect(defaultReplicas(undefined)).toBe(1)
  })

  it('nats layout - every bucket and the stream get the replicas asked', () => {
    for (const s of Object.values(bucketSettings({ replicas: 3 }))) expect(s.replicas).toBe(3)
    for (const s of Object.values(bucketSettings())) expect(s.replicas).toBe(1)
    expect(eventsStreamConfig(3).num_replicas).toBe(3)
    expect(eventsStreamConfig().num_replicas).toBe(1)
  })

  it('nats layout - a replicas mismatch names the migrate command', () => {
    expect(replicasMismatch('zonegate-tables', 1, 3)).toBe(
      'zonegate-tables: replicas 1 (asked 3; `zonegate nats migrate --replicas 3` changes it)',
    )
  })

  it('nats layout - migrate covers every bucket stream and the events stream', () => {
    const s = layoutStreams()
    for (const b of Object.values(Bucket)) expect(s).toContain(`KV_${b}`)
    expect(s.at(-1)).toBe(EVENTS_STREAM)
  })

  it('cli - several --nats values, each possibly a comma list; $NATS_URL otherwise', () => {
    expect(natsServers(['nats://a:1', 'nats://b:2', 'nats://c:3'], {})).toEqual([
      'nats://a:1',
      'nats://b:2',
      'nats://c:3',
    ])
    expect(natsServers(undefined, { NATS_URL: 'nats://a:1, nats://b:2' })).toEqual(['nats://a:1', 'nats://b:2'])
    expect(natsServers([], {})).toEqual(['nats://127.0.0.1:4222'])
  })

  it('cli - --replicas accepts 1 to 5 only', () => {
    expect(parseReplicas('3')).toBe(3)
    for (const bad of ['0', '6', '2.5', 'x']) expect(() => parseReplicas(bad)).toThrow(/--replicas: expected 1 to 5/)
  })

  it('nats cluster helper - a node config routes to every node and keeps its own store', () => {
    const conf = clusterNodeConfig({
      name: 'n2',
      port: 1,
      clusterPort: 2,
      monitorPort: 3,
      storeDir: '/tmp/x/n2',
      routes: [2, 5, 8],
      clusterName: 'zg',
    })
    expect(conf).toContain('server_name: n2')
    expect(conf).toContain('listen: "127.0.0.1:1"')
    expect(conf).toContain('store_dir: "/tmp/x/n2"')
    expect(conf).toContain(
      'routes: ["nats-route://127.0.0.1:2", "nats-route://127.0.0.1:5", "nats-route://127.0.0.1:8"]',
    )
  })
})
