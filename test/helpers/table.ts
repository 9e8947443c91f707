import { tableDigest } from '../../schemas/digest.js'
import { gitRevision } from '../../schemas/revision.js'
import type { TableEgress, TableMesh, TableRoute, ZoneTable } from '../../schemas/table.js'

/**
 * The one zone-table builder of the tests (and benchmarks): valid envelopes with the digest computed, so a test
 * says only what matters to it.
 */

/** A passthrough cross-zone route named by its SNI (service = SNI) to 127.0.0.1:`port`; `extra` overrides. Pure. */
export function route(sni: string, port = 1, extra: Partial<TableRoute> = {}): TableRoute {
  return {
    sni,
    mesh: 'default',
    service: sni,
    kind: 'cross-zone',
    mode: 'passthrough',
    upstreams: [{ address: '127.0.0.1', port, weight: 1 }],
    ...extra,
  }
}

/** The revision a test table of `generation` carries: `main@sha1:<generation in hex, 40 digits>`. Pure. */
export const revisionOf = (generation: number) => gitRevision('main', generation.toString(16).padStart(40, '0'))

/**
 * A table of zone `zone-a` (unless `zone`) with one egress entry `ze-a` on port 10002 (unless `egresses`), the
 * given routes in the given order, and `meshes` when given. With a `generation`, also a `revision`
 * (`revisionOf(generation)` unless given; `null`: none). The digest is computed. Pure.
 */
export function buildTable(
  routes: TableRoute[],
  o: {
    zone?: string
    egresses?: TableEgress[]
    generation?: number
    revision?: string | null
    meshes?: TableMesh[]
  } = {},
): ZoneTable {
  const body = {
    zone: o.zone ?? 'zone-a',
    egresses: o.egresses ?? [{ name: 'ze-a', port: 10002 }],
    routes,
    ...(o.meshes ? { meshes: o.meshes } : {}),
  }
  return {
    apiVersion: 'zonegate.io/v1',
    kind: 'ZoneEgressTable',
    ...(o.generation === undefined ? {} : { generation: o.generation }),
    ...(o.generation === undefined || o.revision === null ? {} : { revision: o.revision ?? revisionOf(o.generation) }),
    digest: tableDigest(body),
    ...body,
  }
}

/**
 * The route the fixtures' ZoneIngress (reconciler-world's ingressYaml) compiles to: service `svc`, SNI
 * `svc{mesh=default}`, one upstream in zone-b at 127.0.0.1:`port`. Pure.
 */
export const svcRoute = (port: number): TableRoute =>
  route('svc{mesh=default}', port, {
    service: 'svc',
    upstreams: [{ address: '127.0.0.1', port, weight: 1, zone: 'zone-b' }],
  })
