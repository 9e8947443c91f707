import { existsSync, mkdirSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type System, startSystem } from './system.js'

/**
 * The reconciler's status page (`GET /` of its admin HTTP) in a real headless Chromium (Debian's package,
 * driven by playwright-core): it loads, shows the reconciler Ready, the zones × instances grid, and a new commit
 * converging on its timeline, live (the page polls), with no console error. The screenshot goes to a scratch
 * folder, and to docs/status-page.png with UPDATE_SCREENSHOT=1.
 */
const CHROMIUM = '/usr/bin/chromium'
const root = resolve(import.meta.dirname, '../..')
let sys: System
let browser: BrowserContext
let page: Page
let profile: string
const problems: string[] = []

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (scripts/setup.sh does)`)
  sys = await startSystem({
    egresses: [
      { zone: 'zone-a', instance: 'a1' },
      { zone: 'zone-a', instance: 'a2' },
      { zone: 'zone-b', instance: 'b1' },
    ],
  })
  profile = await mkdtemp(join(tmpdir(), 'zonegate-chromium-'))
  // a fresh profile (--user-data-dir) per run: playwright passes the folder given here
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 1000 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  page = browser.pages()[0] ?? (await browser.newPage())
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`))
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await sys?.stop()
  if (profile) await rm(profile, { recursive: true, force: true })
})

describe('e2e status page', () => {
  it('status page - loads, shows Ready and every live instance current in the grid', async () => {
    const res = await page.goto(`${sys.http}/`)
    expect(res?.status()).toBe(200)
    expect(res?.headers()['content-security-policy']).toContain("default-src 'self'")
    await page.locator('#ready', { hasText: 'Ready' }).waitFor({ timeout: 30_000 })
    await expect.poll(() => page.locator('.tile.current').count(), { timeout: 30_000 }).toBe(3)
    expect(await page.locator('#zones tbody tr').count()).toBe(2)
    expect(await page.locator('.gridrow .zone').allTextContents()).toEqual(['zone-a', 'zone-b'])
  })

  it('status page - a new commit appears and converges on its timeline, live', async () => {
    const sha = await sys.commit(
      {
        'external-services/status-page.yaml': `type: ExternalService
name: status-page
mesh: default
tags:
  kuma.io/service: status-page
networking:
  address: 127.0.0.1:18081
`,
      },
      'add status-page',
    )
    const timeline = page.locator(`.timeline[data-sha="${sha}"]`)
    await timeline.waitFor({ timeout: 30_000 })
    await expect.poll(() => timeline.getAttribute('data-outcome'), { timeout: 30_000 }).toBe('converged')
    const steps = await timeline.locator('.steps li').allTextContents()
    for (const phase of ['fetched', 'published', 'applied', 'converged'])
      expect(steps.some((s) => s.includes(phase))).toBe(true)
    // an ExternalService not pinned to a zone changes both zones: one applied step per live instance
    expect(steps.filter((s) => s.includes('applied')).length).toBeGreaterThanOrEqual(3)
    await expect.poll(() => page.locator('.tile.current').count(), { timeout: 30_000 }).toBe(3)
    const shot = process.env.UPDATE_SCREENSHOT ? join(root, 'docs/status-page.png') : join(profile, 'status-page.png')
    mkdirSync(resolve(shot, '..'), { recursive: true })
    await page.screenshot({ path: shot, fullPage: true })
    expect(existsSync(shot)).toBe(true)
    expect(problems).toEqual([])
    // the same convergence in the reconciler's metrics
    const metrics = await (await fetch(`${sys.http}/metrics`)).text()
    expect(metrics).toMatch(/^zonegate_reconciler_commit_to_converged_seconds_count [1-9]/m)
  })
})
