// The dashboard's safety rules, checked over real HTTP (serveDashboard on 127.0.0.1, port 0) with
// fetch: authorize, read-only, same-origin writes, escaping, headers, loopback by default.
import { type App, createApp, type EventStore } from '@errand/core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type RunningDashboard, type ServeDashboardOptions, serveDashboard } from '../src/index.js'
import { makeDeadLetter, quiet, unique } from './helpers.js'

const SCRIPT = '<script>window.__pwned = 1</script>'
const HTML_ERROR = '<img src=x onerror="window.__pwned=2">boom'

describe('dashboard security', () => {
  let app: App
  let running: RunningDashboard | undefined
  const queue = unique('sec')

  const serve = async (options: Omit<ServeDashboardOptions, 'app' | 'port'> = {}) => {
    running = await serveDashboard({ app, port: 0, ...options })
    return running
  }
  const form = (fields: Record<string, string>) => new URLSearchParams(fields)
  const dead = async () => (await app.stats(queue)).dead

  beforeAll(async () => {
    const store = unique('memory')
    app = createApp({ broker: `memory://${store}`, backend: `memory://${store}`, logger: quiet })
    await makeDeadLetter(app, queue, SCRIPT, {
      name: 'Error',
      message: HTML_ERROR,
      stack: `Error: ${HTML_ERROR}\n    at <anonymous>`,
    })
    // An outcome event with a hostile task name and error message, as any producer could write.
    const { backend } = await app.connect()
    await (backend as unknown as EventStore).publishEvents([
      {
        type: 'failed',
        id: 'hostile-event',
        task: SCRIPT,
        queue,
        attempt: 1,
        at: Date.now(),
        error: { name: 'Error', message: HTML_ERROR },
        willRetry: false,
      },
    ])
  })
  afterEach(async () => {
    await running?.close()
    running = undefined
  })
  afterAll(async () => {
    await app?.close()
  })

  it('binds 127.0.0.1 by default and sends its security headers', async () => {
    const { url, host } = await serve()
    expect(host).toBe('127.0.0.1')
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const res = await fetch(url)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(res.headers.get('x-frame-options')).toBe('DENY')
    expect(res.headers.get('cache-control')).toBe('no-store')
  })

  it('escapes payloads, errors and stacks: the HTML holds entities, never the markup', async () => {
    const { url } = await serve()
    const page = await (await fetch(`${url}queues/${queue}`)).text()
    expect(page).toContain('&lt;script&gt;window.__pwned = 1&lt;/script&gt;')
    expect(page).toContain('&lt;img src=x onerror=&quot;window.__pwned=2&quot;&gt;boom')
    expect(page).not.toContain(SCRIPT)
    expect(page).not.toContain('<img')
    // The same event fields in the activity list (read back from the store's recent events at start).
    let withActivity = ''
    for (let i = 0; i < 100 && !withActivity.includes('data-id="hostile-event"'); i++) {
      withActivity = await (await fetch(`${url}queues/${queue}`)).text()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const row = withActivity.slice(withActivity.indexOf('<ol class="activity"'))
    expect(row).toContain('data-id="hostile-event"')
    expect(row).toContain('<span class="task-name">&lt;script&gt;window.__pwned = 1&lt;/script&gt;</span>')
    expect(row).toContain(
      '<span class="error-message">&lt;img src=x onerror=&quot;window.__pwned=2&quot;&gt;boom</span>',
    )
    expect(withActivity).not.toContain(SCRIPT)
    expect(withActivity).not.toContain('<img')
    // A queue name is data too: in text, attributes and links.
    const odd = 'a/b"<i>'
    const oddPage = await (await fetch(`${url}queues/${encodeURIComponent(odd)}`)).text()
    expect(oddPage).toContain('a/b&quot;&lt;i&gt;')
    expect(oddPage).toContain(`action="/queues/${encodeURIComponent(odd).replace(/"/g, '&quot;')}/purge"`)
    expect(oddPage).not.toContain('<i>')
  })

  it('authorize: false (or a throw) answers 403 to pages, assets, live updates, API and writes', async () => {
    const { url } = await serve({
      authorize: (req) => {
        if (req.headers.get('x-user') === 'crash') throw new Error('hook failed')
        return req.headers.get('x-user') === 'admin'
      },
    })
    for (const path of [
      '',
      `queues/${queue}`,
      'assets/dashboard.js',
      'api/history',
      'api/throughput',
      'events',
      'tasks/x',
    ]) {
      expect((await fetch(`${url}${path}`)).status, path).toBe(403)
      expect((await fetch(`${url}${path}`, { headers: { 'x-user': 'crash' } })).status, path).toBe(403)
    }
    const post = await fetch(`${url}queues/${queue}/dead-letters/purge`, {
      method: 'POST',
      headers: { origin: url.slice(0, -1) },
      body: form({ confirmed: '1' }),
    })
    expect(post.status).toBe(403)
    expect(await dead()).toBe(1)
    const allowed = await fetch(url, { headers: { 'x-user': 'admin' } })
    expect(allowed.status).toBe(200)
    expect(await allowed.text()).toContain(queue)
  })

  it('read-only: no write buttons, and every write is refused with 403', async () => {
    const { url } = await serve({ readOnly: true })
    const page = await (await fetch(`${url}queues/${queue}`)).text()
    expect(page).toContain('read-only')
    expect(page).toContain(HTML_ERROR.slice(0, 4).replace('<', '&lt;'))
    expect(page).not.toMatch(/method="post"/i)
    for (const path of ['dead-letters/requeue', 'dead-letters/purge', 'purge']) {
      const res = await fetch(`${url}queues/${queue}/${path}`, {
        method: 'POST',
        headers: { origin: url.slice(0, -1) },
        body: form({ confirmed: '1' }),
      })
      expect(res.status, path).toBe(403)
    }
    expect(await dead()).toBe(1)
  })

  it('refuses cross-origin writes (Origin, Sec-Fetch-Site, or neither) and writes nothing; GET cannot write', async () => {
    const { url } = await serve({ trustedOrigins: ['https://ops.example'] })
    const purge = `${url}queues/${queue}/dead-letters/purge`
    const attempts: Record<string, Record<string, string>> = {
      'foreign Origin': { origin: 'http://evil.example' },
      'same host, other port': { origin: 'http://127.0.0.1:1' },
      'null Origin alone': { origin: 'null' },
      'null Origin from a cross-site frame': { origin: 'null', 'sec-fetch-site': 'cross-site' },
      'Sec-Fetch-Site cross-site': { 'sec-fetch-site': 'cross-site' },
      'Sec-Fetch-Site same-site': { 'sec-fetch-site': 'same-site' },
      'no Origin, no Sec-Fetch-Site': {},
    }
    for (const [what, headers] of Object.entries(attempts)) {
      const res = await fetch(purge, {
        method: 'POST',
        headers,
        body: form({ confirmed: '1' }),
        redirect: 'manual',
      })
      expect(res.status, what).toBe(403)
    }
    expect((await fetch(`${purge}?confirmed=1`, { redirect: 'manual' })).status).toBe(404)
    expect(await dead()).toBe(1)
    // Same origin without the confirmation: the server asks instead of acting.
    const unconfirmed = await fetch(purge, {
      method: 'POST',
      headers: { origin: url.slice(0, -1) },
      body: form({}),
    })
    expect(unconfirmed.status).toBe(200)
    expect(await unconfirmed.text()).toContain('Delete every dead letter')
    expect(await dead()).toBe(1)
  })

  it('accepts a same-origin write (Origin or Sec-Fetch-Site, or a trusted origin) and does it', async () => {
    const { url } = await serve({ trustedOrigins: ['https://ops.example'] })
    await makeDeadLetter(app, queue, 'second', { name: 'Error', message: 'second' })
    await makeDeadLetter(app, queue, 'third', { name: 'Error', message: 'third' })
    await makeDeadLetter(app, queue, 'fourth', { name: 'Error', message: 'fourth' })
    expect(await dead()).toBe(4)
    const ids = (await app.deadLetters(queue).list()).map((d) => d.id)
    const post = (headers: Record<string, string>, id: string) =>
      fetch(`${url}queues/${queue}/dead-letters/purge`, {
        method: 'POST',
        headers,
        body: form({ confirmed: '1', id }),
        redirect: 'manual',
      })
    const byOrigin = await post({ origin: url.slice(0, -1) }, ids[0]!)
    expect(byOrigin.status).toBe(303)
    expect(byOrigin.headers.get('location')).toBe(`/queues/${queue}?done=purged-dead&n=1`)
    expect((await post({ 'sec-fetch-site': 'same-origin' }, ids[1]!)).status).toBe(303)
    expect((await post({ origin: 'https://ops.example' }, ids[2]!)).status).toBe(303)
    // A same-origin form post under a no-referrer policy: Origin null, Sec-Fetch-Site same-origin.
    expect((await post({ origin: 'null', 'sec-fetch-site': 'same-origin' }, ids[3]!)).status).toBe(303)
    expect(await dead()).toBe(0)
  })
})
