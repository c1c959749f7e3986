import { type App, isErrandError, type TaskRecord } from '@errand/core'
import { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import { Activity, type ActivityItem } from './activity.js'
import { asset } from './assets.js'
import { viewDeadLetter } from './dead-letter-view.js'
import { depthPoints } from './history.js'
import { html } from './html.js'
import { confirmPage, href, layout, type PageContext, seg } from './pages/layout.js'
import { type Notice, queuePage } from './pages/queue-page.js'
import { queuesPage } from './pages/queues-page.js'
import { schedulesPage } from './pages/schedules-page.js'
import { taskNotFoundPage, taskPage } from './pages/task-page.js'
import { type Sample, Sampler } from './sampler.js'
import { type Authorize, authorizeRequests, guardWrites, securityHeaders } from './security.js'

/** Options of {@link createDashboard}. */
export interface DashboardOptions {
  /** The Errand app whose queues, dead letters and results are shown. */
  readonly app: App
  /** Hide every write button and refuse every write with 403. Default false. */
  readonly readOnly?: boolean
  /**
   * Called with every request (pages, assets, live updates, writes) before anything else; false
   * (or a throw) answers 403. Default: everyone who can reach the server may use it — so bind it
   * to 127.0.0.1 (the default of `serveDashboard`) or pass this hook.
   */
  readonly authorize?: Authorize
  /**
   * The public path the dashboard is mounted under (`/admin/errand`), used in its links and
   * redirects. Default `''` (the root). Mount it at the same path (see the README).
   */
  readonly basePath?: string
  /**
   * Origins besides the request's own that may POST (a proxy that terminates TLS makes the
   * browser's `https://` origin differ from the `http://` URL the server sees).
   */
  readonly trustedOrigins?: readonly string[]
  /** How often every queue's counts are sampled for the chart and live updates. Default 5 000 ms. */
  readonly sampleIntervalMs?: number
  /** Most dead letters listed on a queue's page. Default 100. */
  readonly deadLetterLimit?: number
  /** Outcome events listed per queue ("recent completions and failures"). Default 50. */
  readonly activityLimit?: number
  /** Events read back per queue at start (`app.recentEvents`) for the throughput chart. Default 1000. */
  readonly backfillLimit?: number
}

/** The dashboard: a Hono app, plus `close()` to stop its sampling timer and event subscription. */
export type Dashboard = Hono & {
  /**
   * Stop sampling and close the event subscription (the timer is unref'd, so forgetting this never
   * holds a process open; the subscription also ends when the app closes).
   */
  close(): void
}

/** Most outcome events sent to one page per live message (the newest; the list shows fewer). */
const LIVE_BATCH = 50
/** Live activity is gathered for this long before it is sent, so a busy queue costs one message a second. */
const LIVE_FLUSH_MS = 1_000

const NOTICE_KINDS = new Set<Notice['kind']>(['requeued', 'purged-dead', 'purged-ready'])

function normaliseBasePath(path: string | undefined): string {
  if (path === undefined || path === '' || path === '/') return ''
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(path)) {
    throw new RangeError(`basePath must look like /admin/errand (got ${JSON.stringify(path)})`)
  }
  return path
}

/**
 * Create the dashboard as a Hono app with routes relative to where it is mounted.
 *
 * @example
 * ```ts
 * const root = new Hono()
 * root.route('/admin/errand', createDashboard({ app, basePath: '/admin/errand', authorize: isAdmin }))
 * ```
 */
export function createDashboard(options: DashboardOptions): Dashboard {
  const { app } = options
  if (typeof app?.stats !== 'function' || typeof app.deadLetters !== 'function') {
    throw new TypeError('createDashboard: `app` must be an Errand App (createApp())')
  }
  const readOnly = options.readOnly ?? false
  const deadLetterLimit = options.deadLetterLimit ?? 100
  const sampler = new Sampler(app, { intervalMs: options.sampleIntervalMs ?? 5_000 })
  const activity = new Activity(app, {
    recentLimit: options.activityLimit ?? 50,
    backfillLimit: options.backfillLimit ?? 1000,
  })
  const ctx: PageContext = {
    base: normaliseBasePath(options.basePath),
    readOnly,
    sampleIntervalMs: sampler.intervalMs,
    recentLimit: activity.recentLimit,
    backfillLimit: activity.backfillLimit,
  }
  const eventsOf = (queue: string | undefined) => ({
    status: activity.status,
    windowStart: activity.windowStart(queue),
  })
  const web = new Hono()
  web.use('*', securityHeaders)
  web.use('*', authorizeRequests(options.authorize))
  web.use('*', guardWrites(readOnly, options.trustedOrigins ?? []))
  web.onError((err, c) => {
    const message = err instanceof Error ? err.message : String(err)
    const code = isErrandError(err) ? ` (${err.code})` : ''
    return c.html(layout(ctx, 'Error', html`<h1>Error</h1><p class="error">${message}${code}</p>`).value, 500)
  })

  web.get('/assets/:name', (c) => {
    const file = asset(c.req.param('name'))
    if (!file) return c.notFound()
    return c.body(file.body as Uint8Array<ArrayBuffer>, 200, {
      'Content-Type': file.type,
      'Cache-Control': 'no-cache',
    })
  })

  web.get('/', async (c) => {
    const names = await app.queues()
    const sample = (await sampler.tick()) ?? sampler.latest()
    return c.html(queuesPage(ctx, names, sample, sampler.lastError, eventsOf(undefined)).value)
  })

  web.get('/queues/:name', async (c) => {
    const queue = c.req.param('name')
    const [stats, dead] = await Promise.all([
      app.stats(queue),
      app.deadLetters(queue).list({ limit: deadLetterLimit }),
    ])
    const kind = c.req.query('done') as Notice['kind'] | undefined
    const n = Number(c.req.query('n'))
    const notice = kind && NOTICE_KINDS.has(kind) && Number.isInteger(n) ? { kind, n } : undefined
    const events = { ...eventsOf(queue), recent: activity.recentOf(queue) }
    return c.html(
      queuePage(ctx, queue, stats, dead.map(viewDeadLetter), deadLetterLimit, notice, events).value,
    )
  })

  /**
   * A write route: confirmed (by the page script, or on the confirmation page a script-less browser
   * gets) → run it and redirect to a page that shows what it did.
   */
  const write = (
    path: string,
    question: (queue: string, id: string | undefined) => string,
    run: (queue: string, id: string | undefined) => Promise<string>,
  ) =>
    web.post(path, async (c) => {
      const queue = c.req.param('name') ?? ''
      const form = await c.req.parseBody()
      const id = typeof form.id === 'string' && form.id !== '' ? form.id : undefined
      if (form.confirmed !== '1') {
        const action = href(ctx, path.replace(':name', seg(queue)))
        const back = href(ctx, `/queues/${seg(queue)}`)
        return c.html(confirmPage(ctx, question(queue, id), action, id ? { id } : {}, back).value)
      }
      return c.redirect(await run(queue, id), 303)
    })
  const queueUrl = (queue: string, kind: Notice['kind'], n: number) =>
    href(ctx, `/queues/${seg(queue)}?done=${kind}&n=${n}`)

  write(
    '/queues/:name/dead-letters/requeue',
    (q, id) => (id ? `Requeue dead letter ${id} onto ${q}?` : `Requeue every dead letter of ${q}?`),
    async (q, id) => queueUrl(q, 'requeued', await app.deadLetters(q).requeue(id ? [id] : undefined)),
  )
  write(
    '/queues/:name/dead-letters/purge',
    (q, id) => (id ? `Delete dead letter ${id} for good?` : `Delete every dead letter of ${q} for good?`),
    async (q, id) => queueUrl(q, 'purged-dead', await app.deadLetters(q).purge(id ? [id] : undefined)),
  )
  write(
    '/queues/:name/purge',
    (q) => `Delete every ready and delayed message of ${q}? In-flight and dead messages stay.`,
    async (q) => queueUrl(q, 'purged-ready', await app.purge(q)),
  )

  web.get('/tasks', (c) => {
    const id = c.req.query('id')?.trim()
    return c.redirect(id ? href(ctx, `/tasks/${seg(id)}`) : href(ctx, '/'), 303)
  })

  web.get('/tasks/:id', async (c) => {
    const id = c.req.param('id')
    let record: TaskRecord | undefined
    try {
      record = await app.result(id).info()
    } catch (err) {
      // No result backend: say so on the page rather than as a 500.
      if (isErrandError(err) && err.code === 'ERR_NOT_SUPPORTED')
        return c.html(taskNotFoundPage(ctx, id, err.message).value, 404)
      throw err
    }
    if (!record) return c.html(taskNotFoundPage(ctx, id, undefined).value, 404)
    return c.html(taskPage(ctx, record, activity.lineage(id), activity.status).value)
  })

  web.post('/tasks/:id/cancel', async (c) => {
    const id = c.req.param('id')
    const form = await c.req.parseBody()
    const page = href(ctx, `/tasks/${seg(id)}`)
    if (form.confirmed !== '1') {
      const action = href(ctx, `/tasks/${seg(id)}/cancel`)
      return c.html(confirmPage(ctx, `Cancel task ${id}?`, action, {}, page).value)
    }
    await app.cancel(id)
    return c.redirect(page, 303)
  })

  web.get('/schedules', (c) => c.html(schedulesPage(ctx, options.app.schedules()).value))

  web.get('/api/history', (c) => {
    const queue = c.req.query('queue')
    return c.json({
      intervalMs: sampler.intervalMs,
      historyMs: sampler.historyMs,
      points: depthPoints(sampler.history(), queue === undefined || queue === '' ? undefined : queue),
    })
  })

  web.get('/api/throughput', (c) => {
    const q = c.req.query('queue')
    const queue = q === undefined || q === '' ? undefined : q
    const start = activity.windowStart(queue)
    return c.json({
      status: activity.status,
      historyMs: activity.historyMs,
      // JSON has no infinities: null = the store held every event of the hour.
      windowStart: Number.isFinite(start) ? start : null,
      points: activity.throughput(queue),
    })
  })

  // Live updates: every new sample, as it is taken, to every open page; with `?queue=`, that
  // queue's outcome events (at most LIVE_BATCH a second) and its current throughput minute;
  // without, the all-queues throughput minute.
  web.get('/events', (c) => {
    const q = c.req.query('queue')
    const queue = q === undefined || q === '' ? undefined : q
    return streamSSE(c, async (stream) => {
      const closed = new Promise<void>((resolve) => stream.onAbort(resolve))
      const send = (sample: Sample) =>
        stream.writeSSE({ event: 'sample', data: JSON.stringify(sample) }).catch(() => {})
      const latest = sampler.latest()
      if (latest) await send(latest)
      const unsubscribe = sampler.subscribe((s) => void send(s))
      let batch: ActivityItem[] = []
      let timer: NodeJS.Timeout | undefined
      const flush = () => {
        timer = undefined
        const items = batch.slice(-LIVE_BATCH)
        batch = []
        const minutes = new Set(items.map((i) => Math.floor(Math.min(i.at, Date.now()) / 60_000)))
        const points = [...minutes].map((m) => activity.pointAt(m * 60_000, queue))
        void stream.writeSSE({ event: 'throughput', data: JSON.stringify(points) }).catch(() => {})
        if (queue !== undefined)
          void stream.writeSSE({ event: 'activity', data: JSON.stringify(items) }).catch(() => {})
      }
      // The page was rendered a moment ago; what happened between that and this stream opening
      // would be missed. Send the recent list again first: the browser keeps one row per event.
      if (queue !== undefined) {
        const recent = activity.recentOf(queue).slice(0, LIVE_BATCH).reverse()
        if (recent.length > 0)
          await stream.writeSSE({ event: 'activity', data: JSON.stringify(recent) }).catch(() => {})
      }
      const unlisten = activity.subscribe((item) => {
        if (queue !== undefined && item.queue !== queue) return
        batch.push(item)
        if (batch.length > LIVE_BATCH * 2) batch = batch.slice(-LIVE_BATCH)
        timer ??= setTimeout(flush, LIVE_FLUSH_MS)
      })
      try {
        await closed
      } finally {
        unsubscribe()
        unlisten()
        clearTimeout(timer)
      }
    })
  })

  sampler.start()
  void activity.start()
  return Object.assign(web, {
    close: () => {
      sampler.stop()
      activity.stop()
    },
  }) as Dashboard
}
