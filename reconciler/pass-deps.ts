import type { Logger } from 'pino'
import type { TableSigner } from '../schemas/signing.js'
import type { ZoneTable } from '../schemas/table.js'
import { MAX_TABLE_BODY_BYTES } from '../schemas/table-transport.js'
import { compileZoneTables } from './core/compile.js'
import { validateSnapshot } from './core/validate/index.js'
import type { GitSource } from './source/git-source.js'
import type { PassDeps } from './steps/types.js'
import { ensureBuiltinCa, readAppliedMtls, writeAppliedMtls } from './transport/ca-store.js'
import type { Bus } from './transport/nats-bus.js'
import {
  emitEvent,
  publishZoneTable,
  readCurrentTable,
  readPublishedTables,
  removeZoneTable,
} from './transport/nats-publisher.js'

/**
 * Binds the pass's dependencies to the real edges: the Git source, the validator and compiler of the core, and
 * the transport's NATS functions on a bus. The only place the pass meets concrete implementations.
 */
export function createPassDeps(o: {
  opts: { branch: string; allowEmpty: boolean; defaultZone: string }
  /** `--signing-key`: every published table (and large-table head) is signed with it. */
  signer?: TableSigner
  /** The largest table published (default MAX_TABLE_BODY_BYTES, 256 MiB); lower for tests. */
  maxTableBytes?: number
  source: GitSource
  bus: Bus
  log: Logger
}): PassDeps {
  const { bus } = o
  return {
    source: { resolve: () => o.source.resolve(), fetch: (sha) => o.source.fetch(sha) },
    validate: (snapshot) => validateSnapshot(snapshot, { defaultZone: o.opts.defaultZone }),
    compile: (resources, extra) =>
      toTableList(compileZoneTables(resources, { defaultZone: o.opts.defaultZone, ...extra })),
    ca: {
      readApplied: () => readAppliedMtls(bus.kv.ca),
      writeApplied: (value) => writeAppliedMtls(bus.kv.ca, value),
      ensureBuiltin: (spec) => ensureBuiltinCa(bus.kv.ca, spec, () => new Date(), o.log),
    },
    bus: {
      readInventory: () => readPublishedTables(bus),
      currentTable: (zone) => readCurrentTable(bus, zone),
      publishTable: (table, expected, json) => publishZoneTable(bus, table, expected, o.signer, json),
      removeTable: (zone, expected) => removeZoneTable(bus, zone, expected),
      emit: (event) => emitEvent(bus, event),
      maxTableBytes: () => o.maxTableBytes ?? MAX_TABLE_BODY_BYTES,
    },
    ...(o.signer ? { signer: o.signer } : {}),
    allowEmpty: o.opts.allowEmpty,
    branch: o.opts.branch,
    now: () => new Date(),
    log: o.log,
  }
}

/** The compiler's output as a list of tables (it may hand out a Map keyed by zone or an array). */
function toTableList(out: ReadonlyMap<string, ZoneTable> | readonly ZoneTable[]): ZoneTable[] {
  return Array.isArray(out) ? [...out] : [...(out as ReadonlyMap<string, ZoneTable>).values()]
}
