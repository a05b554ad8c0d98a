import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'
import { chromium } from 'playwright-core'
import type { Browser, Page } from 'playwright-core'
import { startLocalCluster } from '../src/cluster/local-cluster.js'
import type { LocalCluster } from '../src/cluster/local-cluster.js'
import type { NoteAdded } from '../src/notes.js'
import { baseUrl, cleanUpAtEnd, connectClient, startApp } from './helpers.js'

// Debian's Chromium: `apt-get install -y chromium`. CI installs it, so there a missing browser
// fails the test instead of skipping it.
const CHROMIUM_PATH = '/usr/bin/chromium'
/** Screenshots for people to look at; git ignores the folder. */
const ARTIFACTS_DIRECTORY = fileURLToPath(new URL('../test-artifacts/', import.meta.url))
/** How soon a change on one page must show on the other. */
const SYNC_TIMEOUT_MS = 2000

const skip = !existsSync(CHROMIUM_PATH) && process.env.CI === undefined
  ? `${CHROMIUM_PATH} not found; install it with "apt-get install -y chromium" to run this test`
  : false

/** Starts a Redis and two instances from the TypeScript source, behind a round-robin front. */
async function startCluster (t: TestContext): Promise<LocalCluster> {
  const output: string[] = []
  const cluster = await startLocalCluster({
    env: { LOG_LEVEL: 'warn' },
    onOutput: (source, line) => output.push(`${source} | ${line}`)
  })
  cleanUpAtEnd(t, () => cluster.stop())
  // Instance logs help explain a failure, and stay out of the way otherwise.
  cleanUpAtEnd(t, () => { if (t.signal.aborted || output.some((line) => line.includes('"level":50'))) t.diagnostic(output.join('\n')) })
  return cluster
}

async function launchBrowser (t: TestContext): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'
    ]
  })
  cleanUpAtEnd(t, () => browser.close())
  return browser
}

/** Collects uncaught page errors and, separately, console errors. */
interface PageErrors {
  uncaught: string[]
  console: string[]
}

/** Opens the board page and waits until it has joined the board. */
async function openBoard (browser: Browser, url: string, errors: PageErrors): Promise<Page> {
  const page = await browser.newPage()
  page.on('pageerror', (err) => errors.uncaught.push(err.message))
  page.on('console', (message) => {
    if (message.type() === 'error') errors.console.push(message.text())
  })
  await page.goto(url)
  await page.locator('#connection-state[data-state="connected"]').waitFor({ timeout: 20_000 })
  return page
}

function noteItem (page: Page, text: string): ReturnType<Page['locator']> {
  return page.locator('#notes li', { has: page.locator('.note-text', { hasText: text }) })
}

async function addNote (page: Page, text: string): Promise<void> {
  await page.getByLabel('Note text').fill(text)
  await page.getByRole('button', { name: 'Add note' }).click()
}

async function noteTexts (page: Page): Promise<string[]> {
  return await page.locator('#notes li .note-text').allTextContents()
}

/** A connection state that the page showed, with its label and whether adding a note was possible. */
interface RecordedState {
  state: string
  label: string
  addNoteDisabled: boolean
}

/**
 * Records every connection state the page shows from now on, in `window.recordedStates`. A state
 * can last only milliseconds, as "reconnecting" does when the first retry succeeds, too short for
 * a locator to see it. The script is a string because the test's TypeScript settings have no DOM
 * types.
 */
async function recordConnectionStates (page: Page): Promise<void> {
  await page.evaluate(`(() => {
    const element = document.getElementById('connection-state')
    const button = document.getElementById('add-note')
    const record = () => ({ state: element.dataset.state, label: element.textContent, addNoteDisabled: button.disabled })
    const states = [record()]
    window.recordedStates = states
    new MutationObserver(() => states.push(record())).observe(element, { attributes: true, attributeFilter: ['data-state'] })
  })()`)
}

async function recordedStates (page: Page): Promise<RecordedState[]> {
  return await page.evaluate('window.recordedStates') as RecordedState[]
}

test('board syncs between pages on two instances', { skip, timeout: 120_000 }, async (t) => {
  const cluster = await startCluster(t)
  const browser = await launchBrowser(t)
  const [web1, web2] = cluster.instances
  const errors: PageErrors = { uncaught: [], console: [] }

  const pageOn1 = await openBoard(browser, `${web1!.url}/?board=launch-plan`, errors)
  const pageOn2 = await openBoard(browser, `${web2!.url}/?board=launch-plan`, errors)

  assert.equal(await pageOn1.locator('#instance-id').textContent(), 'web.1')
  assert.equal(await pageOn2.locator('#instance-id').textContent(), 'web.2')
  assert.match(await pageOn1.locator('#connection-id').textContent() ?? '', /^\S{10,}$/, 'the page shows its connection id')
  assert.equal(await pageOn1.locator('#board-name').textContent(), 'launch-plan')
  assert.equal(await pageOn1.title(), 'launch-plan – Notes board')

  // Presence counts both pages, although each instance has only one of them.
  for (const page of [pageOn1, pageOn2]) {
    await page.locator('#presence-count', { hasText: /^2$/ }).waitFor({ timeout: 5000 })
  }

  await t.test('add', async () => {
    await addNote(pageOn2, 'Book the venue for the launch party')
    const noteOn1 = noteItem(pageOn1, 'Book the venue for the launch party')
    await noteOn1.waitFor({ timeout: SYNC_TIMEOUT_MS })
    assert.match(await noteOn1.locator('.note-meta').textContent() ?? '', /^Added .+ on web\.2$/)
    await noteItem(pageOn2, 'Book the venue for the launch party').waitFor({ timeout: SYNC_TIMEOUT_MS })
    assert.equal(await pageOn2.locator('#notes li').count(), 1, 'page 2 shows its own note once')
    // Page 2 clears the text area when its AddNote completes, which can be after the broadcast
    // reached page 1, so wait for it.
    await pageOn2.waitForFunction("document.getElementById('note-text').value === ''", undefined, { timeout: SYNC_TIMEOUT_MS })
    assert.equal(await pageOn2.getByLabel('Note text').inputValue(), '', 'page 2 clears the text area')

    // A rejected note shows the server's message and leaves the connection usable.
    await addNote(pageOn1, '   ')
    await pageOn1.getByRole('alert').filter({ hasText: 'Note text is empty.' }).waitFor({ timeout: 5000 })

    await addNote(pageOn1, 'Order the cake')
    await noteItem(pageOn2, 'Order the cake').waitFor({ timeout: SYNC_TIMEOUT_MS })
    assert.deepEqual(await noteTexts(pageOn2), ['Order the cake', 'Book the venue for the launch party'], 'newest note on top')
    assert.equal(await pageOn2.locator('#note-count').textContent(), '(2)')
  })

  await t.test('edit', async () => {
    await noteItem(pageOn1, 'Book the venue').getByRole('button', { name: 'Edit' }).click()
    await pageOn1.getByLabel('Edit note').fill('Book the venue for 80 people')
    await pageOn1.getByRole('button', { name: 'Save' }).click()

    const editedOn2 = noteItem(pageOn2, 'Book the venue for 80 people')
    await editedOn2.waitFor({ timeout: SYNC_TIMEOUT_MS })
    assert.match(await editedOn2.locator('.note-meta').textContent() ?? '', /^Added .+ on web\.2 · edited .+ on web\.1$/)
    // The broadcast can reach page 2 before page 1 has the reply to its own save, so wait.
    await pageOn1.getByLabel('Edit note').waitFor({ state: 'detached', timeout: SYNC_TIMEOUT_MS })
    assert.equal(await pageOn1.getByLabel('Edit note').count(), 0, 'saving closes the editor')
  })

  await t.test('move', async () => {
    await noteItem(pageOn2, 'Book the venue').getByRole('button', { name: 'Move up' }).click()
    for (const page of [pageOn1, pageOn2]) {
      await page.locator('#notes li .note-text').first().filter({ hasText: 'Book the venue' }).waitFor({ timeout: SYNC_TIMEOUT_MS })
    }
    assert.deepEqual(await noteTexts(pageOn1), ['Book the venue for 80 people', 'Order the cake'])
    assert.deepEqual(await noteTexts(pageOn2), ['Book the venue for 80 people', 'Order the cake'])
    assert.ok(await noteItem(pageOn2, 'Book the venue').getByRole('button', { name: 'Move up' }).isDisabled(), 'the top note cannot move up')
  })

  await t.test('delete', async () => {
    await addNote(pageOn1, 'Send the invitations')
    await noteItem(pageOn2, 'Send the invitations').waitFor({ timeout: SYNC_TIMEOUT_MS })
    // Page 1 is editing the note that page 2 deletes.
    await noteItem(pageOn1, 'Order the cake').getByRole('button', { name: 'Edit' }).click()
    await noteItem(pageOn2, 'Order the cake').getByRole('button', { name: 'Delete' }).click()
    for (const page of [pageOn1, pageOn2]) {
      await noteItem(page, 'Order the cake').waitFor({ state: 'detached', timeout: SYNC_TIMEOUT_MS })
    }
    await pageOn1.getByRole('alert').filter({ hasText: 'The note you were editing was deleted by someone else.' }).waitFor({ timeout: 1000 })
    assert.deepEqual(await noteTexts(pageOn1), ['Send the invitations', 'Book the venue for 80 people'])
    assert.deepEqual(await noteTexts(pageOn2), ['Send the invitations', 'Book the venue for 80 people'])
  })

  await t.test('reload shows the stored board', async () => {
    await pageOn1.reload()
    await pageOn1.locator('#connection-state[data-state="connected"]').waitFor({ timeout: 20_000 })
    assert.deepEqual(await noteTexts(pageOn1), ['Send the invitations', 'Book the venue for 80 people'])
    // The closed connection left and the new one joined: still two pages on the board.
    await pageOn1.locator('#presence-count', { hasText: /^2$/ }).waitFor({ timeout: 5000 })
  })

  await mkdir(ARTIFACTS_DIRECTORY, { recursive: true })
  await pageOn1.setViewportSize({ width: 1000, height: 900 })
  await pageOn1.screenshot({ path: join(ARTIFACTS_DIRECTORY, 'board-on-web.1-desktop.png'), fullPage: true })
  await pageOn2.setViewportSize({ width: 390, height: 844 })
  await pageOn2.screenshot({ path: join(ARTIFACTS_DIRECTORY, 'board-on-web.2-phone.png'), fullPage: true })
  assert.deepEqual(errors, { uncaught: [], console: [] })
})

test('pages survive a restart of their instance', { skip, timeout: 120_000 }, async (t) => {
  const cluster = await startCluster(t)
  const browser = await launchBrowser(t)
  const errors: PageErrors = { uncaught: [], console: [] }
  const boardUrl = `${cluster.front.url}/?board=restart`

  const first = await openBoard(browser, boardUrl, errors)
  const second = await openBoard(browser, boardUrl, errors)
  await addNote(first, 'Written before the restart')
  await noteItem(second, 'Written before the restart').waitFor({ timeout: SYNC_TIMEOUT_MS })

  const servedBy = await first.locator('#instance-id').textContent()
  const restarted = cluster.instances.find((instance) => instance.name === servedBy)
  assert.ok(restarted !== undefined, `page 1 is on a known instance, not "${servedBy}"`)
  const survivor = cluster.instances.find((instance) => instance !== restarted)!
  await recordConnectionStates(first)

  // A writer connected straight to the surviving instance changes the board while page 1 has
  // no connection, so page 1 can show the change only by reloading the board after reconnecting.
  const writer = new HubConnectionBuilder()
    .withUrl(`${survivor.url}/noteHub`, { skipNegotiation: true, transport: HttpTransportType.WebSockets })
    .configureLogging(LogLevel.None)
    .build()
  cleanUpAtEnd(t, () => writer.stop())
  await writer.start()

  // SIGTERM, as Heroku sends on a restart: the hub sends its clients a Close message that
  // allows reconnecting, so they reconnect through the front.
  const stopped = restarted.stop()
  await first.waitForFunction('window.recordedStates.some((recorded) => recorded.state === "reconnecting")', undefined, { timeout: 10_000 })
  const reconnecting = (await recordedStates(first)).find((recorded) => recorded.state === 'reconnecting')!
  assert.equal(reconnecting.label, 'Connection lost. Reconnecting…')
  assert.ok(reconnecting.addNoteDisabled, 'changes wait for the connection')
  await writer.invoke<NoteAdded>('AddNote', 'restart', 'Written during the restart')
  await stopped

  await first.locator('#connection-state[data-state="connected"]').waitFor({ timeout: 20_000 })
  assert.equal(await first.locator('#instance-id').textContent(), survivor.name, 'page 1 moved to the other instance')
  await noteItem(first, 'Written during the restart').waitFor({ timeout: SYNC_TIMEOUT_MS })
  assert.deepEqual(await noteTexts(first), ['Written during the restart', 'Written before the restart'])
  const states = (await recordedStates(first)).map((recorded) => recorded.state)
  assert.deepEqual(states.slice(0, 2), ['connected', 'reconnecting'], `states: ${states.join(', ')}`)
  assert.equal(states.at(-1), 'connected', `states: ${states.join(', ')}`)

  // The restarted instance comes back; both pages keep working through the front.
  await restarted.start()
  await second.locator('#connection-state[data-state="connected"]').waitFor({ timeout: 20_000 })
  await addNote(first, 'Written after the restart')
  await noteItem(second, 'Written after the restart').waitFor({ timeout: SYNC_TIMEOUT_MS })
  await addNote(second, 'Reply from page 2')
  await noteItem(first, 'Reply from page 2').waitFor({ timeout: SYNC_TIMEOUT_MS })
  await first.locator('#presence-count', { hasText: /^2$/ }).waitFor({ timeout: 5000 })

  await mkdir(ARTIFACTS_DIRECTORY, { recursive: true })
  await first.setViewportSize({ width: 1000, height: 900 })
  await first.screenshot({ path: join(ARTIFACTS_DIRECTORY, 'board-after-restart.png'), fullPage: true })

  // Failed WebSocket attempts during the restart are logged to the console; uncaught errors never.
  assert.deepEqual(errors.uncaught, [])
  if (errors.console.length > 0) t.diagnostic(`console errors during the restart:\n${errors.console.join('\n')}`)
})

test('page reloads the board after a lost change', { skip, timeout: 60_000 }, async (t) => {
  const app = await startApp(t, { instanceId: 'solo' })
  const browser = await launchBrowser(t)
  const writer = await connectClient(t, app)
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))

  // Drops the NoteAdded message of one note on its way to the page, as a message published
  // while Redis was unreachable would be lost. JSON hub messages end with the 0x1e separator,
  // and one WebSocket message may carry several.
  let dropped = 0
  await page.routeWebSocket(/\/noteHub/, (route) => {
    const server = route.connectToServer()
    route.onMessage((message) => server.send(message))
    server.onMessage((message) => {
      const records = String(message).split('\x1e').filter((record) => record !== '')
      const kept = records.filter((record) => {
        const lost = record.includes('"target":"NoteAdded"') && record.includes('Lost in transit')
        if (lost) dropped++
        return !lost
      })
      if (kept.length > 0) route.send(kept.map((record) => record + '\x1e').join(''))
    })
  })
  await page.goto(`${baseUrl(app)}/?board=lossy`)
  await page.locator('#connection-state[data-state="connected"]').waitFor({ timeout: 20_000 })

  await writer.invoke('AddNote', 'lossy', 'Lost in transit')
  await writer.invoke('AddNote', 'lossy', 'Arrives with revision 2')
  // Revision 2 shows that revision 1 is missing; the page waits a second for it, then reloads.
  await noteItem(page, 'Lost in transit').waitFor({ timeout: 5000 })
  assert.equal(dropped, 1, 'the route dropped exactly one message')
  assert.deepEqual(await noteTexts(page), ['Arrives with revision 2', 'Lost in transit'])
  assert.deepEqual(errors, [])
})

test('page reloads a board that was recreated', { skip, timeout: 60_000 }, async (t) => {
  // The memory store keeps one board, so writing another board drops the first.
  const app = await startApp(t, { instanceId: 'solo', maxBoardsInMemory: 1 })
  const browser = await launchBrowser(t)
  const writer = await connectClient(t, app)
  const errors: PageErrors = { uncaught: [], console: [] }
  const page = await openBoard(browser, `${baseUrl(app)}/?board=kept`, errors)

  await writer.invoke('AddNote', 'kept', 'Before the board was dropped')
  await noteItem(page, 'Before the board was dropped').waitFor({ timeout: SYNC_TIMEOUT_MS })
  await writer.invoke('AddNote', 'elsewhere', 'Pushes the first board out')
  await writer.invoke('AddNote', 'kept', 'After the board was recreated')

  // The new note carries a new epoch, so the page reloads instead of adding it to stale notes.
  await noteItem(page, 'Before the board was dropped').waitFor({ state: 'detached', timeout: SYNC_TIMEOUT_MS })
  assert.deepEqual(await noteTexts(page), ['After the board was recreated'])
  assert.deepEqual(errors, { uncaught: [], console: [] })
})
