import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { chromium } from 'playwright-core'
import type { Page } from 'playwright-core'
import { baseUrl, cleanUpAtEnd, startApp, startRedis } from './helpers.js'

// Debian's Chromium: `apt-get install -y chromium`. CI installs it, so there a missing browser
// fails the test instead of skipping it.
const CHROMIUM_PATH = '/usr/bin/chromium'
const SCREENSHOT_PATH = '/tmp/demo-app-notes-board.png'

const skip = !existsSync(CHROMIUM_PATH) && process.env.CI === undefined
  ? `${CHROMIUM_PATH} not found; install it with "apt-get install -y chromium" to run this test`
  : false

/** Opens the board page and waits until it has joined the board. Collects page errors. */
async function openBoard (page: Page, url: string, errors: string[]): Promise<void> {
  page.on('pageerror', (err) => errors.push(err.message))
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text())
  })
  await page.goto(url)
  await page.locator('#connection-state[data-state="connected"]').waitFor({ timeout: 20_000 })
}

test('note from page on B appears on page on A', { skip, timeout: 120_000 }, async (t) => {
  const redis = await startRedis(t)
  const a = await startApp(t, { redisUrl: redis.url, instanceId: 'A' })
  const b = await startApp(t, { redisUrl: redis.url, instanceId: 'B' })

  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'
    ]
  })
  cleanUpAtEnd(t, () => browser.close())

  const errors: string[] = []
  const pageOnA = await browser.newPage()
  const pageOnB = await browser.newPage()
  await openBoard(pageOnA, `${baseUrl(a)}/?board=launch-plan`, errors)
  await openBoard(pageOnB, `${baseUrl(b)}/?board=launch-plan`, errors)

  assert.equal(await pageOnA.locator('#instance-id').textContent(), 'A')
  assert.equal(await pageOnB.locator('#instance-id').textContent(), 'B')
  assert.equal(await pageOnA.locator('#board-name').textContent(), 'launch-plan')
  assert.equal(await pageOnA.title(), 'launch-plan – Notes board')

  await pageOnB.getByLabel('Note text').fill('Book the venue for the launch party')
  await pageOnB.getByRole('button', { name: 'Add note' }).click()

  const noteOnA = pageOnA.locator('#notes li', { hasText: 'Book the venue for the launch party' })
  await noteOnA.waitFor({ timeout: 20_000 })
  assert.match(await noteOnA.locator('.note-meta').textContent() ?? '', /on instance B$/)
  assert.equal(await pageOnB.locator('#notes li').count(), 1, 'page B shows its own note once')
  assert.equal(await pageOnB.getByLabel('Note text').inputValue(), '', 'page B clears the text area')

  // A rejected note shows the server's message and leaves the connection usable.
  await pageOnA.getByLabel('Note text').fill('   ')
  await pageOnA.getByRole('button', { name: 'Add note' }).click()
  await pageOnA.getByRole('alert').filter({ hasText: 'Note text is empty.' }).waitFor({ timeout: 10_000 })

  await pageOnA.getByLabel('Note text').fill('Order the cake')
  await pageOnA.getByRole('button', { name: 'Add note' }).click()
  await pageOnB.locator('#notes li', { hasText: 'Order the cake' }).waitFor({ timeout: 20_000 })
  assert.deepEqual(
    await pageOnB.locator('#notes li .note-text').allTextContents(),
    ['Order the cake', 'Book the venue for the launch party'],
    'newest note first'
  )

  await pageOnA.setViewportSize({ width: 900, height: 900 })
  await pageOnA.screenshot({ path: SCREENSHOT_PATH, fullPage: true })
  assert.deepEqual(errors, [])
})
