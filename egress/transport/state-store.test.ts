import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { largeTable } from '../../test/helpers/large-table.js'
import { CompactZoneTable, compactRoutes, releaseTable, TableReleasedError } from '../core/compact-table.js'
import { saveTable, stateFilePath } from './state-store.js'

/**
 * The state-file writer reads a compact table's bytes across awaits (the file system writes them from the
 * buffer): a release of that table asked meanwhile (the table replaced) waits for the write, and a table already
 * released is refused with a clear error instead of writing freed memory.
 */
let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'state-store-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const compactOf = (n: number, generation: number) => {
  const { routes, ...meta } = largeTable(n, { generation })
  return { plain: largeTable(n, { generation }), compact: new CompactZoneTable(meta, compactRoutes(routes)) }
}

describe('state store', () => {
  it('state store - a table released while it is being written is written whole, then released', async () => {
    const { plain, compact } = compactOf(20_000, 4)
    const saving = saveTable(dir, compact)
    expect(releaseTable(compact)).toBe(0) // asked while the write holds it: deferred
    expect(compact.compact.released).toBe(false)
    const path = await saving
    expect(path).toBe(stateFilePath(dir, 'zone-a'))
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(plain)
    expect(compact.compact.released).toBe(true)
    expect(compact.compact.json.buffer.byteLength).toBe(0)
  })

  it('state store - a released table is refused, the file on disk is left as it was', async () => {
    const { compact } = compactOf(10, 5)
    releaseTable(compact)
    await expect(saveTable(dir, compact)).rejects.toThrow(TableReleasedError)
    expect(JSON.parse(await readFile(stateFilePath(dir, 'zone-a'), 'utf8')).generation).toBe(4)
  })
})
