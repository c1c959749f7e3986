// The dashboard mounted inside a host app: under a path of a Hono app, and as a Node listener
// under a path of a plain http server (what Express and Fastify mount). Links, assets, live
// updates and writes must all live under the mount path.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type App, createApp, defineTask } from '@errand/core'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createDashboard, createDashboardListener } from '../src/index.js'
import { makeDeadLetter, quiet, unique } from './helpers.js'

async function listen(server: Server): Promise<string> {
  if (!server.listening) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })

/** Reads one server-sent event from `url` and returns its data. */
async function firstEvent(url: string): Promise<string> {
  const controller = new AbortController()
  const res = await fetch(url, { signal: controller.signal })
  expect(res.headers.get('content-type')).toContain('text/event-stream')
  const reader = res.body!.getReader()
  let text = ''
  while (!text.includes('\n\n')) {
    const { value, done } = await reader.read()
    if (done) break
    text += new TextDecoder().decode(value)
  }
  controller.abort()
  return text
}

describe('mounting the dashboard', () => {
  let app: App
  const queue = unique('mount')

  beforeAll(async () => {
    const store = unique('memory')
    app = createApp({ broker: `memory://${store}`, backend: `memory://${store}`, logger: quiet })
    await makeDeadLetter(app, queue, 'garbage', { name: 'Error', message: 'nope' })
    await makeDeadLetter(app, queue, 'x'.repeat(200_000), { name: 'Error', message: 'nope again' })
  })
  afterAll(async () => {
    await app?.close()
  })

  it('under a path of a Hono app: pages, links, assets, live updates and writes under that path', async () => {
    const dashboard = createDashboard({ app, basePath: '/admin/errand', sampleIntervalMs: 200 })
    const root = new Hono()
    root.get('/', (c) => c.text('the host app'))
    root.route('/admin/errand', dashboard)
    const server = serve({ fetch: root.fetch, port: 0, hostname: '127.0.0.1' }) as Server
    await new Promise((resolve) => server.once('listening', resolve))
    const origin = await listen(server)
    try {
      expect(await (await fetch(`${origin}/`)).text()).toBe('the host app')
      const page = await (await fetch(`${origin}/admin/errand`)).text()
      expect(page).toContain('href="/admin/errand"')
      expect(page).toContain(`href="/admin/errand/queues/${queue}"`)
      expect(page).toContain('src="/admin/errand/assets/dashboard.js"')
      expect(page).toContain('data-base="/admin/errand"')
      const js = await fetch(`${origin}/admin/errand/assets/chart.umd.min.js`)
      expect(js.status).toBe(200)
      expect(js.headers.get('content-type')).toContain('javascript')
      expect(await js.text()).toContain('Chart')
      expect(await firstEvent(`${origin}/admin/errand/events`)).toMatch(/^event: sample\ndata: \{.*"dead":2/m)
      const res = await fetch(`${origin}/admin/errand/queues/${queue}/dead-letters/requeue`, {
        method: 'POST',
        headers: { origin },
        body: new URLSearchParams({ confirmed: '1', id: (await app.deadLetters(queue).list())[0]!.id }),
        redirect: 'manual',
      })
      expect(res.status).toBe(303)
      expect(res.headers.get('location')).toBe(`/admin/errand/queues/${queue}?done=requeued&n=1`)
      expect((await app.stats(queue)).dead).toBe(1)
      // Outside the mount path the dashboard answers nothing.
      expect((await fetch(`${origin}/queues/${queue}`)).status).toBe(404)
    } finally {
      dashboard.close()
      await close(server)
    }
  })

  it('as a Node listener under a path of a plain http server, also with Express-style rewritten urls', async () => {
    const listener = createDashboardListener({ app, basePath: '/ops/errand' })
    const server = createServer((req: IncomingMessage, res) => {
      if (req.url?.startsWith('/express/ops/errand')) {
        // What Express does for app.use('/express/ops/errand', listener)... with the url rewritten
        // below the mount point and the full one kept in originalUrl.
        const full = req.url.slice('/express'.length)
        Object.assign(req, { originalUrl: full, url: full.slice('/ops/errand'.length) || '/' })
        return void listener(req, res)
      }
      if (req.url?.startsWith('/ops/errand')) return void listener(req, res)
      res.writeHead(200, { 'content-type': 'text/plain' }).end('the host app')
    })
    const origin = await listen(server)
    try {
      expect(await (await fetch(`${origin}/elsewhere`)).text()).toBe('the host app')
      const page = await fetch(`${origin}/ops/errand/queues/${encodeURIComponent(queue)}`)
      expect(page.status).toBe(200)
      const body = await page.text()
      expect(body).toContain(`action="/ops/errand/queues/${queue}/dead-letters/requeue"`)
      expect(body).toContain('nope')
      // A huge payload is cut, saying so, rather than sent whole (a page lists up to 100).
      expect(body).toContain(
        `${'x'.repeat(1000)}\n… (truncated: ${200_000 - 64 * 1024} more characters not shown)`,
      )
      expect(body.length).toBeLessThan(100_000)
      expect((await fetch(`${origin}/ops/errand/assets/dashboard.css`)).status).toBe(200)
      expect((await fetch(`${origin}/express/ops/errand/queues/${queue}`)).status).toBe(200)
      const home = await fetch(`${origin}/ops/errand/`, { redirect: 'manual' })
      expect(home.status).toBe(308)
      expect(home.headers.get('location')).toBe('/ops/errand')
      expect((await fetch(`${origin}/ops/errand`)).status).toBe(200)
      const dead = (await app.stats(queue)).dead
      const ready = (await app.stats(queue)).ready
      expect(dead).toBeGreaterThan(0)
      const res = await fetch(`${origin}/ops/errand/queues/${queue}/dead-letters/requeue`, {
        method: 'POST',
        headers: { origin },
        body: new URLSearchParams({ confirmed: '1' }),
        redirect: 'manual',
      })
      expect(res.status).toBe(303)
      expect(res.headers.get('location')).toBe(`/ops/errand/queues/${queue}?done=requeued&n=${dead}`)
      expect((await app.stats(queue)).dead).toBe(0)
      expect((await app.stats(queue)).ready).toBe(ready + dead)
    } finally {
      listener.close()
      await close(server)
    }
  })

  it('refuses a basePath that is not a plain absolute path', () => {
    for (const basePath of ['admin', '/admin/', '/a b', '/"><script>']) {
      expect(() => createDashboard({ app, basePath }), basePath).toThrow(/basePath/)
    }
  })
})

describe('the task page', () => {
  it("shows a child task's parent and root from its record, with events off", async () => {
    const store = unique('memory')
    const queue = unique('lineage')
    const leaf = defineTask({ name: 'dash.leaf', queue, input: z.number(), handler: (n) => n })
    const fan = defineTask({
      name: 'dash.fan',
      queue,
      input: z.number(),
      handler: async (n, ctx) => (await ctx.send(leaf.s(n))).id,
    })
    // Events off: the page cannot learn the lineage from events, only from the record.
    const app = createApp({
      broker: `memory://${store}`,
      backend: `memory://${store}`,
      tasks: [leaf, fan],
      events: false,
      logger: quiet,
    })
    try {
      await app.worker().start()
      const parent = await app.send(fan.s(1))
      const child = (await parent.get({ timeoutMs: 10_000 })) as string
      await app.result(child).get({ timeoutMs: 10_000 })
      const dashboard = createDashboard({ app })
      const page = await (await dashboard.request(`/tasks/${child}`)).text()
      expect(page).toContain('id="lineage"')
      expect(page).toContain(`href="/tasks/${parent.id}"`)
      expect(page).toContain(`href="/queues/${queue}"`)
    } finally {
      await app.close()
    }
  })
})
