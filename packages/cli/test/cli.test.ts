// End to end: the `errand` binary (run from its sources in a child process) against real Redis
// and PostgreSQL, with the data set up by an app in this process.
import { type App, createApp } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { add, refuse } from './fixtures/app.js'
import { FIXTURE_APP, runCli, runInProcess, startCli } from './run-cli.js'
import { postgresStore, redisStore, type TestStore } from './stores.js'

const QUEUE = 'cli-test'

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe.each([redisStore(), postgresStore()])('errand CLI on $name', (store: TestStore) => {
  const env = { ERRAND_BROKER_URL: store.url, ERRAND_BACKEND_URL: store.url, CLI_TEST_QUEUE: QUEUE }
  const withApp = (args: string[]) => ['--app', FIXTURE_APP, ...args]
  let app: App

  beforeAll(async () => {
    app = createApp({ broker: store.url, backend: store.url, tasks: [add, refuse] })
    // Two dead letters made the way production makes them: a task that refuses, and garbage.
    const worker = await app.worker({ concurrency: 2 }).start()
    const refused = await app.send(refuse.s({ why: 'no thanks' }))
    await expect(refused.get({ timeoutMs: 20_000 })).rejects.toThrow('no thanks')
    const { broker } = await app.connect()
    await broker.publish(QUEUE, [{ body: new TextEncoder().encode('not an envelope') }])
    await until(async () => (await app.stats(QUEUE)).dead === 2, '2 dead letters')
    await worker.stop()
    // Three tasks waiting, with no worker running.
    await app.sendMany([1, 2, 3].map((n) => add.s({ a: n, b: n })))
  }, 60_000)

  afterAll(async () => {
    await app?.close()
    await store.cleanup()
  })

  it('queues and stats show ready and dead counts, as a table and as JSON', async () => {
    const json = await runCli(withApp(['queues', '--json']), env)
    expect(json.stderr).toBe('')
    expect(json.code).toBe(0)
    const row = (JSON.parse(json.stdout) as { queue: string; ready: number; dead: number }[]).find(
      (r) => r.queue === QUEUE,
    )
    expect(row, `queue ${QUEUE} listed`).toMatchObject({ queue: QUEUE, ready: 3, dead: 2 })
    const text = await runCli(withApp(['queues']), env)
    expect(text.stdout).toMatch(new RegExp(`│ ${QUEUE}\\s+│ 3\\s+│`))
    const stats = await runCli(['stats', QUEUE, '--json'], env)
    expect(JSON.parse(stats.stdout)).toMatchObject({ queue: QUEUE, ready: 3, dead: 2 })
  })

  it('dlq list shows reasons and tasks, filters by reason, and dlq show prints the error and payload', async () => {
    const list = await runCli(['dlq', 'list', QUEUE, '--json'], env)
    expect(list.code).toBe(0)
    const entries = JSON.parse(list.stdout) as {
      id: string
      reason: string
      task?: string
      payload: unknown
    }[]
    expect(entries.map((e) => e.reason).sort()).toEqual(['rejected', 'undecodable'])
    expect(entries.find((e) => e.reason === 'rejected')?.task).toBe('cli.refuse')
    const garbage = await runCli(['dlq', 'list', QUEUE, '--reason', 'undecodable', '--json'], env)
    const only = JSON.parse(garbage.stdout) as { payload: unknown }[]
    expect(only).toHaveLength(1)
    expect(only[0]?.payload).toEqual({ text: 'not an envelope' })
    const rejected = entries.find((e) => e.reason === 'rejected')!
    const show = await runCli(['dlq', 'show', QUEUE, rejected.id], env)
    expect(show.code).toBe(0)
    expect(show.stdout).toContain('no thanks')
    expect(show.stdout).toContain('"task": "cli.refuse"')
    const missing = await runCli(['dlq', 'show', QUEUE, 'no-such-id'], env)
    expect(missing.code).toBe(3)
    expect(missing.stderr).toContain('no dead letter "no-such-id"')
  })

  it('requeue and purge of dead letters ask for --yes off a terminal, then act', async () => {
    const refused = await runCli(['dlq', 'requeue', QUEUE], env)
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('without --yes')
    expect((await app.stats(QUEUE)).dead).toBe(2)
    const purged = await runCli(['dlq', 'purge', QUEUE, '--reason', 'undecodable', '--yes'], env)
    expect(purged.code).toBe(0)
    expect(purged.stdout).toContain('purged 1 of 1 dead letter')
    const requeued = await runCli(['dlq', 'requeue', QUEUE, '--yes'], env)
    expect(requeued.stdout).toContain('requeued 1 of 1 dead letter')
    expect(await app.stats(QUEUE)).toMatchObject({ ready: 4, dead: 0 })
  })

  it('send validates against the app module, a worker runs it, and result shows the record', async () => {
    const bad = await runCli(withApp(['send', 'cli.add', '--input', '{"a":"two","b":3}']), env)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('input.a')
    const notJson = await runCli(withApp(['send', 'cli.add', '--input', '{a:1}']), env)
    expect(notJson.code).toBe(2)
    expect(notJson.stderr).toContain('--input is not JSON')
    const unknown = await runCli(withApp(['send', 'cli.nope', '--input', '{}']), env)
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('no task named "cli.nope"')

    const worker = startCli(withApp(['worker', '--concurrency', '4']), env)
    let workerErr = ''
    worker.stderr?.on('data', (d: Buffer) => {
      workerErr += d.toString()
    })
    const exited = new Promise<number | null>((resolve) => worker.on('close', resolve))
    try {
      const sent = await runCli(
        withApp(['send', 'cli.add', '--input', '{"a":2,"b":3}', '--wait', '20000', '--json']),
        env,
      )
      expect(sent.stderr).toBe('')
      const out = JSON.parse(sent.stdout) as { id: string; state: string; result: number }
      expect(out).toMatchObject({ state: 'SUCCESS', result: 5 })
      const record = await runCli(['result', out.id, '--json'], env)
      expect(JSON.parse(record.stdout)).toMatchObject({
        id: out.id,
        task: 'cli.add',
        state: 'SUCCESS',
        result: 5,
        attempts: 1,
      })
      // The worker drained what waited: the three adds, and the requeued refusal (dead again).
      await until(async () => {
        const s = await app.stats(QUEUE)
        return s.ready === 0 && s.dead === 1
      }, 'the worker to drain the queue')
    } finally {
      worker.kill('SIGTERM')
    }
    expect(await exited, `worker stderr: ${workerErr}`).toBe(0)
    expect(workerErr).toContain('worker stopped')
    const missing = await runCli(['result', 'no-such-task'], env)
    expect(missing.code).toBe(3)
  }, 60_000)

  it('purge deletes waiting messages after --yes', async () => {
    const before = (await app.stats(QUEUE)).ready
    await app.sendMany([1, 2].map((n) => add.s({ a: n, b: 0 })))
    const refused = await runCli(['purge', QUEUE], env)
    expect(refused.code).toBe(2)
    const purged = await runCli(['purge', QUEUE, '--yes'], env)
    expect(purged.stdout).toContain(`purged ${before + 2} messages of "${QUEUE}"`)
    expect((await app.stats(QUEUE)).ready).toBe(0)
  })
})

describe('errand CLI: mistakes and failures (in process)', () => {
  it('an unreachable broker is one line with its code, exit 1, no stack trace', async () => {
    const r = await runInProcess(['stats', 'q'], { ERRAND_BROKER_URL: 'redis://127.0.0.1:1/0' })
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('ERR_CONNECTION')
    expect(r.stderr).not.toMatch(/^\s+at /m)
  })

  it('usage errors exit 2 and say what is wrong', async () => {
    const cases: [string[], Record<string, string>, string][] = [
      [['stats', 'q', '--bogus'], { ERRAND_BROKER_URL: 'memory://' }, "unknown option '--bogus'"],
      [['stats'], { ERRAND_BROKER_URL: 'memory://' }, "missing required argument 'queue'"],
      [['dlq', 'list'], { ERRAND_BROKER_URL: 'memory://' }, "missing required argument 'queue'"],
      [['send', 'x'], { ERRAND_BROKER_URL: 'memory://' }, "required option '--input <json>' not specified"],
      [['queues'], {}, 'no broker'],
      [['queues'], { ERRAND_BROKER_URL: 'nosuch://x' }, 'unknown scheme "nosuch:"'],
      [['--app', 'missing.ts', 'queues'], {}, 'no such file'],
      [['--app', 'x.ts', '--broker', 'memory://', 'queues'], {}, 'drop --broker'],
      [['worker'], { ERRAND_BROKER_URL: 'memory://' }, 'pass --app'],
      [['schedules'], { ERRAND_BROKER_URL: 'memory://' }, 'pass --app'],
      [['stats', 'q', '--watch', '--interval', '5'], { ERRAND_BROKER_URL: 'memory://' }, '--interval'],
      [['dlq', 'list', 'q', '--limit', '0'], { ERRAND_BROKER_URL: 'memory://' }, '--limit'],
      [['dlq', 'requeue', 'q', '1', '--reason', 'rejected'], { ERRAND_BROKER_URL: 'memory://' }, 'not both'],
    ]
    for (const [args, env, words] of cases) {
      const r = await runInProcess(args, env)
      expect(r.code, `errand ${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr, `errand ${args.join(' ')}`).toContain(words)
    }
  })

  it('never prints a password', async () => {
    const r = await runInProcess(['stats', 'q'], { ERRAND_BROKER_URL: 'redis://user:hunter2@127.0.0.1:1/0' })
    expect(r.code).toBe(1)
    expect(r.stderr + r.stdout).not.toContain('hunter2')
  })

  it('send without --app sends the raw input by name; help exits 0', async () => {
    const r = await runInProcess(['send', 'anything', '--input', '{"x":1}', '--json'], {
      ERRAND_BROKER_URL: 'memory://cli-raw',
    })
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toHaveProperty('id')
    const help = await runInProcess(['dlq', '--help'], {})
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('requeue')
  })
})

describe('errand schedules', () => {
  it('lists the schedules the app module arms, with the next tick', async () => {
    const r = await runCli(['--app', FIXTURE_APP, 'schedules', '--json'], {
      ERRAND_BROKER_URL: 'memory://cli-schedules',
      ERRAND_BACKEND_URL: 'memory://cli-schedules',
      CLI_TEST_SCHEDULE: '1',
    })
    expect(r.code, r.stderr).toBe(0)
    const list = JSON.parse(r.stdout) as { name: string; when: string; timezone: string; nextTick: string }[]
    expect(list.map((s) => [s.name, s.when, s.timezone])).toEqual([
      ['cli.nightly', '0 3 * * *', 'Europe/Paris'],
    ])
    expect(Date.parse(list[0]!.nextTick)).toBeGreaterThan(Date.now())
  }, 60_000)
})
