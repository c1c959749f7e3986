// End to end in headless Chromium against Redis: the dashboard shows the right counts, updates
// them live, shows a hostile payload and error as text (nothing runs; in the dead letters and in the
// activity list, where the failure arrives from the events read back at start), requeues a dead
// letter by clicking through the confirmation, the task then succeeds (live in the activity list
// and the throughput chart), and a task's page shows its progress, logs and lineage.
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type App, createApp, defineTask, type EventStore, type TaskEvent } from '@errand/core'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { type RunningDashboard, serveDashboard } from '../src/index.js'
import { launchChromium } from './browser.js'
import { quiet, redisPrefix, unique, until } from './helpers.js'

const here = dirname(fileURLToPath(import.meta.url))
const ARTIFACTS = join(here, 'artifacts')
const DOC_IMAGES = join(here, '..', '..', '..', 'docs', 'images')
/** Set ERRAND_UPDATE_SCREENSHOTS=1 to refresh the guide's screenshots in docs/images/. */
const updateDocs = process.env.ERRAND_UPDATE_SCREENSHOTS === '1'

const SCRIPT = '<script>window.__pwned = 1</script>'
const HTML_ERROR = '<img src=x onerror="window.__pwned=2">first try fails'
const WAIT = { timeout: 30_000 }

const work = unique('orders')
const waiting = unique('emails')
let runs = 0

/** Fails its first run (one attempt: dead-lettered), succeeds when requeued. */
const flaky = defineTask({
  name: 'dashboard.flaky',
  queue: work,
  input: z.object({ note: z.string() }),
  handler: ({ note }) => {
    runs++
    if (runs === 1) throw new Error(HTML_ERROR)
    return { ok: true, note }
  },
})

/** Reports progress and a log line, for the task page. */
const halfway = defineTask({
  name: 'dashboard.halfway',
  queue: work,
  input: z.object({ n: z.number() }),
  handler: ({ n }, ctx) => {
    ctx.progress(50)
    ctx.log.info('halfway')
    return n
  },
})

/** Never consumed in this test: its queue holds ready messages. */
const idle = defineTask({
  name: 'dashboard.idle',
  queue: waiting,
  input: z.object({ to: z.string() }),
  handler: () => undefined,
})

// Generous but bounded: Chromium on a loaded 2-core machine can take seconds per navigation.
describe('dashboard in Chromium (Redis)', { timeout: 120_000 }, () => {
  const store = redisPrefix()
  let app: App
  let dashboard: RunningDashboard
  let browser: Browser
  let page: Page
  let taskId: string
  const pageErrors: string[] = []

  const shot = async (name: string, docName?: string) => {
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
    if (updateDocs && docName) {
      mkdirSync(DOC_IMAGES, { recursive: true })
      await page.screenshot({ path: join(DOC_IMAGES, docName), fullPage: true })
    }
  }
  const cell = (queue: string, field: string) =>
    page.locator(`td[data-queue="${queue}"][data-field="${field}"]`)
  const pwned = () => page.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned)
  /** The largest succeeded-per-minute point the throughput chart draws (0 when none). */
  const succeededPoints = () =>
    page.evaluate(() => {
      // Runs in the page: DOM types are not in this project's lib, so name only what is used.
      type Chart = { data: { datasets: { data: { y: number | null }[] }[] } }
      const page = globalThis as unknown as {
        document: { getElementById(id: string): object | null }
        Chart: { getChart(canvas: object): Chart | undefined }
      }
      const canvas = page.document.getElementById('throughput-chart')
      const chart = canvas ? page.Chart.getChart(canvas) : undefined
      const points = chart?.data.datasets[0]?.data ?? []
      return Math.max(0, ...points.map((p: { y: number | null }) => p.y ?? 0))
    })

  beforeAll(async () => {
    app = createApp({ broker: store.url, backend: store.url, tasks: [flaky, halfway, idle], logger: quiet })
    // Stopped by app.close().
    await app.worker({ queues: [work], concurrency: 1 }).start()
    const sent = await app.send(flaky.s({ note: SCRIPT }))
    taskId = sent.id
    await expect(sent.get({ timeoutMs: 30_000 })).rejects.toThrow('first try fails')
    await until(async () => (await app.stats(work)).dead === 1, 'the dead letter', 30_000)
    await app.sendMany(['a@example.com', 'b@example.com', 'c@example.com'].map((to) => idle.s({ to })))
    dashboard = await serveDashboard({ app, port: 0, sampleIntervalMs: 500 })
    browser = await launchChromium()
    page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
    page.setDefaultTimeout(30_000)
    page.on('pageerror', (err) => pageErrors.push(err.message))
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await dashboard?.close()
    await app?.close()
    await store.cleanup()
  }, 60_000)

  it('the queues page shows the counts, updates them live, and draws the depth chart', async () => {
    await page.goto(dashboard.url)
    await expect.poll(() => cell(waiting, 'ready').textContent(), WAIT).toBe('3')
    await expect.poll(() => cell(work, 'dead').textContent(), WAIT).toBe('1')
    await expect.poll(() => cell(work, 'ready').textContent(), WAIT).toBe('0')
    await page.locator('#depth-chart[data-ready="1"]').waitFor(WAIT)
    await expect.poll(() => page.locator('#live').textContent(), WAIT).toMatch(/^live: updated/)
    // Events are on (Redis): the throughput chart is drawn and says what its window covers.
    await page.locator('#throughput-chart[data-ready="1"]').waitFor(WAIT)
    expect(await page.locator('#throughput .note').textContent()).toContain('since it\nsubscribed at')
    // A new message shows up without a reload (server-sent events).
    await app.send(idle.s({ to: 'd@example.com' }))
    await expect.poll(() => cell(waiting, 'ready').textContent(), WAIT).toBe('4')
    await shot('queues')
    expect(pageErrors).toEqual([])
  })

  it('the queue page shows the dead letter: reason, error, stack and payload as literal text; nothing ran', async () => {
    await page.locator(`a[href="/queues/${work}"]`).click()
    await page.waitForURL(`**/queues/${work}`)
    const item = page.locator('.dead-letter')
    await expect.poll(() => item.count(), WAIT).toBe(1)
    expect(await item.locator('.reason').textContent()).toBe('exhausted')
    expect(await item.locator('.task-name').textContent()).toBe('dashboard.flaky')
    expect(await item.locator('.error-message').textContent()).toBe(HTML_ERROR)
    expect(await item.locator('pre.stack').textContent()).toContain(HTML_ERROR)
    expect(await item.locator('pre.payload').textContent()).toContain(JSON.stringify(SCRIPT).slice(1, -1))
    // No element was made from the payload or the error.
    expect(await page.locator('main script, main img').count()).toBe(0)
    // The failed attempt, read back from the store's recent events at start, is in the activity
    // list with the hostile message as text.
    const failedRow = page.locator('#activity .event-failed')
    await expect.poll(() => failedRow.count(), WAIT).toBe(1)
    expect(await failedRow.locator('.error-message').textContent()).toBe(HTML_ERROR)
    expect(await failedRow.locator('.task-name').textContent()).toBe('dashboard.flaky')
    expect(await failedRow.locator('a.task-link').getAttribute('href')).toBe(`/tasks/${taskId}`)
    expect(await page.locator('main script, main img').count()).toBe(0)
    expect(await pwned()).toBeUndefined()
    await page.locator('#depth-chart[data-ready="1"]').waitFor(WAIT)
    await page.locator('#throughput-chart[data-ready="1"]').waitFor(WAIT)
    await item
      .locator('details')
      .first()
      .evaluate((d) => d.setAttribute('open', ''))
    await item
      .locator('details')
      .nth(1)
      .evaluate((d) => d.setAttribute('open', ''))
    await shot('queue', 'dashboard-queue.png')
    expect(pageErrors).toEqual([])
  })

  it('requeue asks first (dismiss: nothing happens; accept: requeued), and the task then succeeds', async () => {
    const requeue = page.locator('.dead-letter button', { hasText: 'Requeue' })
    const dismissed = new Promise<string>((resolve) =>
      page.once('dialog', (d) => {
        resolve(d.message())
        void d.dismiss()
      }),
    )
    await requeue.click()
    expect(await dismissed).toMatch(/^Requeue dead letter .+ onto /)
    expect((await app.stats(work)).dead).toBe(1)
    expect(page.url()).toBe(`${dashboard.url}queues/${work}`)

    page.once('dialog', (d) => void d.accept())
    await Promise.all([page.waitForURL(/done=requeued&n=1/), requeue.click()])
    expect(await page.locator('.notice').textContent()).toBe('1 dead letter(s) requeued.')
    // The worker runs it again and it succeeds: the queue empties live, and the success arrives
    // live in the activity list (server-sent events, no reload) and in the throughput chart.
    await expect.poll(() => cell(work, 'dead').textContent(), WAIT).toBe('0')
    await until(async () => (await app.result(taskId).info())?.state === 'SUCCESS', 'SUCCESS', 30_000)
    const done = page.locator(`#activity .event-succeeded[data-id="${taskId}"]`)
    await expect.poll(() => done.count(), WAIT).toBe(1)
    expect(await done.locator('.task-name').textContent()).toBe('dashboard.flaky')
    // A hostile event arriving live (task name and error message are user data) is written as text.
    const { backend } = await app.connect()
    const hostile: TaskEvent = {
      type: 'failed',
      id: 'hostile-event',
      task: SCRIPT,
      queue: work,
      attempt: 1,
      at: Date.now(),
      error: { name: 'Error', message: HTML_ERROR },
      willRetry: false,
    }
    await (backend as unknown as EventStore).publishEvents([hostile])
    const hostileRow = page.locator('#activity .event[data-id="hostile-event"]')
    await expect.poll(() => hostileRow.count(), WAIT).toBe(1)
    expect(await hostileRow.locator('.task-name').textContent()).toBe(SCRIPT)
    expect(await hostileRow.locator('.error-message').textContent()).toBe(HTML_ERROR)
    expect(await page.locator('main script, main img').count()).toBe(0)
    expect(await pwned()).toBeUndefined()
    await expect.poll(() => succeededPoints(), WAIT).toBeGreaterThan(0)
    await page.reload()
    await page.locator('#throughput-chart[data-ready="1"]').waitFor(WAIT)
    expect(await succeededPoints()).toBeGreaterThan(0)
    expect(await page.locator(`#activity .event-succeeded[data-id="${taskId}"]`).count()).toBe(1)
    await page.locator('#depth-chart[data-ready="1"]').waitFor(WAIT)
    await shot('queue-activity')

    await page.goto(`${dashboard.url}tasks/${taskId}`)
    expect(await page.locator('#task-state').textContent()).toBe('SUCCESS')
    expect(await page.locator('table.fields').first().textContent()).toContain('dashboard.flaky')
    expect(await page.locator('pre.result').textContent()).toContain('window.__pwned = 1')
    expect(await pwned()).toBeUndefined()
    await shot('task')
    expect(runs).toBe(2)
    expect(pageErrors).toEqual([])
  })

  it('a task page shows its progress, its log lines and its lineage; the queues chart counts it', async () => {
    const sent = await app.send(halfway.s({ n: 7 }))
    expect(await sent.get({ timeoutMs: 30_000 })).toBe(7)
    await page.goto(`${dashboard.url}tasks/${sent.id}`)
    expect(await page.locator('#task-state').textContent()).toBe('SUCCESS')
    expect(await page.locator('#task-progress progress').getAttribute('value')).toBe('50')
    expect(await page.locator('#task-progress .progress-value').textContent()).toBe('50')
    expect(await page.locator('#task-logs td.message').allTextContents()).toEqual(['halfway'])
    expect(await page.locator('#task-logs td.level').allTextContents()).toEqual(['info'])
    // Lineage from its events: its queue, no parent, and it is its own workflow's root (or none).
    await expect.poll(() => page.locator('#lineage').count(), WAIT).toBe(1)
    expect(await page.locator('#lineage a').first().getAttribute('href')).toBe(`/queues/${work}`)
    await shot('task-progress', 'dashboard-task.png')
    // The all-queues throughput chart has counted the successes.
    await page.goto(dashboard.url)
    await page.locator('#throughput-chart[data-ready="1"]').waitFor(WAIT)
    await page.locator('#depth-chart[data-ready="1"]').waitFor(WAIT)
    expect(await succeededPoints()).toBeGreaterThan(0)
    await shot('queues-throughput', 'dashboard-queues.png')
    expect(pageErrors).toEqual([])
  })

  it("the task search opens a task by id, and the schedules page lists the app's schedules with their next tick", async () => {
    await page.goto(dashboard.url)
    await page.locator('.task-search input').fill(taskId)
    await Promise.all([page.waitForURL(`**/tasks/${taskId}`), page.locator('.task-search button').click()])
    expect(await page.locator('#task-state').textContent()).toBe('SUCCESS')
    await page.locator('header nav a', { hasText: 'Schedules' }).click()
    await page.waitForURL('**/schedules')
    expect(await page.locator('main').textContent()).toContain('has armed no schedules')
    const nightly = await app.schedule('nightly', '0 3 * * *', idle.s({ to: 'nobody' }), {
      timezone: 'Europe/Paris',
    })
    try {
      await page.goto(dashboard.url)
      await page.locator('header nav a', { hasText: 'Schedules' }).click()
      await page.waitForURL('**/schedules')
      const row = page.locator('table.schedules tbody tr')
      expect(await row.count()).toBe(1)
      expect(await row.locator('td').first().textContent()).toBe('nightly')
      expect(await row.textContent()).toContain('0 3 * * *')
      expect(await row.textContent()).toContain('Europe/Paris')
      expect(await row.textContent()).toContain(nightly.nextTick()!.toISOString())
    } finally {
      await nightly.stop()
    }
  })
})
