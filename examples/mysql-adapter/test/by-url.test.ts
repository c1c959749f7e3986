// "A third-party scheme works by URL": an app that names `mysql://` in its options, with the
// adapter passed to createApp or registered for the process, runs tasks on MariaDB like any
// built-in store; without the adapter the URL is refused with a clear error.
import { createApp, defineTask, registerAdapter, silentLogger } from '@errand/core'
import { createPool } from 'mysql2/promise'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { adapter } from '../src/index.js'

const base = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test'
const table = `errand_url_${process.pid}_${Date.now().toString(36)}`
const url = `${base}?table=${table}&pollMs=50`
const apps: { close(): Promise<void> }[] = []

afterAll(async () => {
  for (const app of apps) await app.close()
  const pool = createPool({ uri: base })
  await pool.query(`DROP TABLE IF EXISTS \`${table}_jobs\`, \`${table}_dead\``)
  await pool.end()
})

function task(queue: string) {
  return defineTask({
    name: `url.add.${queue}`,
    queue,
    input: z.object({ a: z.number(), b: z.number() }),
    handler: ({ a, b }) => a + b,
  })
}

describe('a third-party adapter by URL', () => {
  it('createApp({ broker: "mysql://…", adapters: [adapter] }) runs a task on MariaDB', async () => {
    const add = task('url-given')
    const app = createApp({
      broker: url,
      backend: 'memory://',
      adapters: [adapter],
      tasks: [add],
      logger: silentLogger,
    })
    apps.push(app)
    await app.worker({ concurrency: 2 }).start()
    const r = await app.send(add.s({ a: 2, b: 3 }))
    expect(await r.get({ timeoutMs: 10_000 }), 'the task ran through the mysql:// broker').toBe(5)
    expect((await app.stats('url-given')).ready, 'nothing left in the MariaDB queue').toBe(0)
  })

  it('without the adapter, mysql:// is refused naming the scheme; once registered, the same options work', async () => {
    const add = task('url-registered')
    const options = { broker: url, backend: 'memory://', tasks: [add], logger: silentLogger }
    const refused = createApp(options)
    apps.push(refused)
    await expect(refused.connect(), 'an unknown scheme must be refused, not hang').rejects.toThrow(/mysql/)
    registerAdapter(adapter)
    const app = createApp(options)
    apps.push(app)
    await app.worker().start()
    const r = await app.send(add.s({ a: 20, b: 22 }))
    expect(await r.get({ timeoutMs: 10_000 }), 'the registered adapter served mysql://').toBe(42)
  })
})
