import { Command, Option } from 'commander'
import { afterEach, describe, expect, it } from 'vitest'
import {
  applyEnvironment,
  collectList,
  envVarFor,
  formatDuration,
  formatStructured,
  natsUnreachableMessage,
  packageVersion,
  parseDuration,
  redactUrl,
  UsageError,
} from '../lib/common.js'
import { bashCompletion, fishCompletion, zshCompletion } from './completion.js'
import { buildProgram } from './main.js'

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['2h45m', 9_900_000],
    ['1.5h', 5_400_000],
    ['1h2m3.5s', 3_723_500],
    ['30', 30_000],
    ['0.25', 250],
    ['1500us', 2],
    ['0s', 0],
  ])('parseDuration - %s is %i ms', (text, ms) => {
    expect(parseDuration(text, '--x')).toBe(ms)
  })

  it.each(['', 'abc', '10', '1m30', '5 s', '1d', '-1s', 's', '1m-30s'].filter((t) => t !== '10'))(
    'parseDuration - %j is a usage error naming the flag',
    (text) => {
      expect(() => parseDuration(text, '--timeout')).toThrow(UsageError)
      expect(() => parseDuration(text, '--timeout')).toThrow(/--timeout: expected a duration like .*1m30s/)
    },
  )

  it.each([
    [3_600_000, '1h'],
    [30_000, '30s'],
    [90_000, '90s'],
    [120_000, '120s'],
    [1500, '1500ms'],
    [0, '0ms'],
  ])('formatDuration - %i ms is written %s and parsed back', (ms, text) => {
    expect(formatDuration(ms)).toBe(text)
    expect(parseDuration(formatDuration(ms), '--x')).toBe(ms)
  })
})

describe('environment', () => {
  it.each([
    ['--rollout-timeout', 'ZONEGATE_ROLLOUT_TIMEOUT'],
    ['--zone', 'ZONEGATE_ZONE'],
    ['--no-request', 'ZONEGATE_NO_REQUEST'],
    ['--nats', 'NATS_URL'],
    ['--creds', 'NATS_CREDS'],
    ['--log-level', 'LOG_LEVEL'],
    ['--log-format', 'LOG_FORMAT'],
  ])('envVarFor - %s reads %s', (flag, env) => {
    expect(envVarFor(flag)).toBe(env)
  })

  const saved = { ...process.env }
  afterEach(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k]
    Object.assign(process.env, saved)
  })

  /** A program with one subcommand whose action records its options; parse `argv` with `env` set. */
  async function run(env: Record<string, string>, argv: string[]) {
    Object.assign(process.env, env)
    let seen: Record<string, unknown> = {}
    const program = new Command('t').exitOverride()
    program
      .command('go')
      .option('--rollout-timeout <d>', 'x', '60s')
      .option('--allow-empty', 'x')
      .option('--no-request', 'x')
      .requiredOption('--repo <r>', 'x')
      .addOption(new Option('--zone <z>', 'x').argParser(collectList))
      .action((opts: Record<string, unknown>) => {
        seen = opts
      })
    applyEnvironment(program)
    try {
      await program.parseAsync(['node', 't', 'go', ...argv])
    } finally {
      for (const k of Object.keys(env)) delete process.env[k]
    }
    return seen
  }

  it('environment - a variable sets the option; the flag wins over it; the default applies without both', async () => {
    expect(await run({ ZONEGATE_REPO: '/srv/git', ZONEGATE_ROLLOUT_TIMEOUT: '2m' }, [])).toMatchObject({
      repo: '/srv/git',
      rolloutTimeout: '2m',
    })
    expect(await run({ ZONEGATE_ROLLOUT_TIMEOUT: '2m' }, ['--repo', 'r', '--rollout-timeout', '5s'])).toMatchObject({
      rolloutTimeout: '5s',
    })
    expect(await run({}, ['--repo', 'r'])).toMatchObject({ rolloutTimeout: '60s', request: true })
  })

  it('environment - boolean variables read their value; repeatable ones a comma-separated list', async () => {
    expect(await run({ ZONEGATE_ALLOW_EMPTY: 'true', ZONEGATE_REPO: 'r' }, [])).toMatchObject({ allowEmpty: true })
    expect(await run({ ZONEGATE_ALLOW_EMPTY: 'false', ZONEGATE_REPO: 'r' }, [])).toMatchObject({ allowEmpty: false })
    expect(await run({ ZONEGATE_NO_REQUEST: '1', ZONEGATE_REPO: 'r' }, [])).toMatchObject({ request: false })
    expect(await run({ ZONEGATE_ZONE: 'zone-a, zone-b', ZONEGATE_REPO: 'r' }, [])).toMatchObject({
      zone: ['zone-a', 'zone-b'],
    })
    await expect(run({ ZONEGATE_ALLOW_EMPTY: 'maybe', ZONEGATE_REPO: 'r' }, [])).rejects.toThrow(
      /ZONEGATE_ALLOW_EMPTY: expected true or false \(for --allow-empty\), got "maybe"/,
    )
  })

  it('environment - every option of every zonegate command has its variable (shown in --help)', () => {
    const missing: string[] = []
    const walk = (cmd: Command, path: string) => {
      for (const o of cmd.options)
        if (o.long !== '--help' && o.long !== '--version' && o.envVar !== envVarFor(o.long ?? ''))
          missing.push(`${path} ${o.long}`)
      for (const sub of cmd.commands) walk(sub, `${path} ${sub.name()}`)
    }
    const program = buildProgram()
    walk(program, 'zonegate')
    expect(missing).toEqual([])
    const names = program.commands.map((c) => c.name())
    expect(names).toEqual(expect.arrayContaining(['validate', 'status', 'events', 'version', 'completion']))
  })
})

describe('output and messages', () => {
  it('formatStructured - json is indented; yaml is one document (a stream when asked)', async () => {
    expect(await formatStructured({ a: 1, b: ['x'] }, 'json')).toBe('{\n  "a": 1,\n  "b": [\n    "x"\n  ]\n}\n')
    expect(await formatStructured({ a: 1, b: ['x'] }, 'yaml')).toBe('a: 1\nb:\n  - x\n')
    expect(await formatStructured({ a: 1 }, 'yaml', true)).toBe('---\na: 1\n')
  })

  it('natsUnreachableMessage - names the URLs without credentials and says how to start NATS', () => {
    const m = natsUnreachableMessage(
      ['nats://user:secret@10.0.0.1:4222', 'nats://127.0.0.1:4222'],
      new Error('ECONNREFUSED'),
    )
    expect(m).toContain('cannot connect to NATS at nats://10.0.0.1:4222, nats://127.0.0.1:4222 (ECONNREFUSED)')
    expect(m).toContain('nats-server -js')
    expect(m).not.toContain('secret')
    expect(redactUrl('https://tok@git.example.com/r.git?x=1')).toBe('https://git.example.com/r.git')
  })

  it('packageVersion - is the version in package.json', async () => {
    const { readFile } = await import('node:fs/promises')
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    expect(packageVersion()).toBe(pkg.version)
  })
})

describe('completion', () => {
  const program = buildProgram()
  it('completion - bash completes commands, nested commands, flags and flag choices', () => {
    const s = bashCompletion(program)
    expect(s).toContain('complete -o default -F _zonegate zonegate')
    expect(s).toMatch(/'rollout watch'\)/)
    expect(s).toMatch(/--output\|-o\) COMPREPLY=\(\$\(compgen -W 'text json yaml'/)
    expect(s).toMatch(/''\)\n[\s\S]*?compgen -W '[^']*\bvalidate\b[^']*\bevents\b/)
  })

  it('completion - zsh wraps the bash one; fish lists subcommands and options with descriptions', () => {
    expect(zshCompletion(program)).toMatch(/^#compdef zonegate\n[\s\S]*bashcompinit[\s\S]*_zonegate\(\)/)
    const f = fishCompletion(program)
    expect(f).toContain("complete -c zonegate -n '__fish_use_subcommand' -a status -d")
    expect(f).toMatch(/-n '__fish_seen_subcommand_from status' -l wait -d/)
    expect(f).toMatch(/-l output -s o -r -a 'text json yaml'/)
  })
})
