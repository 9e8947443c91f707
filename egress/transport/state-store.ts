import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { ZoneTable } from '../../schemas/table.js'
import { CompactZoneTable, holdCompact, tableJsonParts } from '../core/compact-table.js'

/**
 * The egress's last good table on disk (`--state-dir`), so an egress can start and serve while NATS is down.
 * One file per zone, `<dir>/<zone>.table.json`; replicas of a zone may share the directory, so every write
 * goes to a temp file unique to the writer and is renamed over the target (atomic on one file system): a
 * reader sees the old or the new table, never half of one. Replicas write the same published table, so the
 * last rename wins harmlessly.
 */

/** Path of a zone's state file. Pure. */
export function stateFilePath(dir: string, zone: string): string {
  return join(dir, `${zone}.table.json`)
}

/**
 * Writes the table atomically (temp file + rename), creating the directory if needed. Rejects with the fs
 * error (the caller logs it: a failed save never stops serving).
 */
export async function saveTable(dir: string, table: ZoneTable): Promise<string> {
  // a compact table stays readable until written (its buffers go to the file system across awaits): a release
  // asked meanwhile (the table replaced) waits for this write; an already released table is refused here
  const unhold = table instanceof CompactZoneTable ? holdCompact(table.compact) : () => {}
  try {
    return await writeTable(dir, table)
  } finally {
    unhold()
  }
}

async function writeTable(dir: string, table: ZoneTable): Promise<string> {
  await mkdir(dir, { recursive: true })
  const target = stateFilePath(dir, table.zone)
  const tmp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    // a compact table's routes are written as the JSON bytes they are held in (nothing parsed on the event loop)
    const file = await open(tmp, 'w', 0o644)
    try {
      for (const part of [...tableJsonParts(table), '\n'])
        await (typeof part === 'string' ? file.write(part) : file.write(part))
    } finally {
      await file.close()
    }
    await rename(tmp, target)
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {})
    throw err
  }
  return target
}

/** Reads the saved table of a zone as bytes (admitted in the worker), or undefined when there is no file. */
export async function readSavedTable(dir: string, zone: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(stateFilePath(dir, zone))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/**
 * Reads the saved table of a zone: the parsed JSON (untrusted: the lifecycle admits it like any other table),
 * or undefined when there is no file. Rejects when the file exists but cannot be read or parsed.
 */
export async function loadSavedTable(dir: string, zone: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(stateFilePath(dir, zone), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new Error(`${stateFilePath(dir, zone)}: ${(err as Error).message}`)
  }
}
