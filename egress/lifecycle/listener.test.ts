import { describe, expect, it } from 'vitest'
import type { TableEgress, ZoneTable } from '../../schemas/table.js'
import { buildTable } from '../../test/helpers/table.js'
import { findEgressEntry, resolveListen } from './listener.js'

const one: TableEgress[] = [{ name: 'ze-a', address: '10.0.0.1', port: 10002, adminPort: 9901 }]
const two: TableEgress[] = [...one, { name: 'ze-b', port: 10003 }]
const table = (egresses: TableEgress[]): ZoneTable => buildTable([], { egresses })

describe('listener', () => {
  it.each([
    ['the named entry', two, 'ze-b', 'ze-b'],
    ['the only entry when no name is given', one, undefined, 'ze-a'],
    ['no entry for an unknown name, even when the table has one entry', one, 'ze-x', undefined],
    ['no entry without a name when there are several', two, undefined, undefined],
  ])('listener - findEgressEntry gives %s', (_title, egresses, name, expected) => {
    expect(findEgressEntry({ egresses }, name)?.name).toBe(expected)
  })

  it('listener - --listen wins; otherwise the entry names host and port; an unknown name is refused', () => {
    expect(resolveListen(table(one), { listen: { host: '127.0.0.1', port: 1 }, name: 'ze-x' })).toEqual({
      host: '127.0.0.1',
      port: 1,
    })
    expect(resolveListen(table(one), { name: 'ze-a' })).toEqual({ host: '10.0.0.1', port: 10002 })
    expect(() => resolveListen(table(one), { name: 'ze-x' })).toThrow(/egress ze-x is not in the table of zone zone-a/)
  })
})
