// Long operations report progress: a bar that redraws on a terminal (checked through tmux, a real
// pseudo-terminal), and plain lines when stderr is not a terminal (logs, CI).
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { type App, createApp, type Delivery } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_DIR, cliArgv, runCli } from './run-cli.js'
import { redisStore } from './stores.js'

const store = redisStore()
let app: App

/** `n` dead letters in `queue`, made through the broker itself (publish, take, dead-letter). */
async function deadLetters(queue: string, n: number): Promise<void> {
  const { broker } = await app.connect()
  await broker.publish(
    queue,
    Array.from({ length: n }, (_, i) => ({ body: new TextEncoder().encode(`junk ${i}`) })),
  )
  let moved = 0
  let done!: () => void
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  const consumer = await broker.consume(
    queue,
    (d: Delivery) => {
      void d.deadLetter({ reason: 'rejected' }).then(() => {
        if (++moved === n) done()
      })
    },
    { prefetch: 500 },
  )
  await all
  await consumer.cancel()
}

function tmux(...args: string[]): string {
  return execFileSync('tmux', args, { encoding: 'utf8' })
}

beforeAll(async () => {
  app = createApp({ broker: store.url })
})
afterAll(async () => {
  await app.close()
  await store.cleanup()
})

describe('errand dlq progress', () => {
  it('off a terminal: plain progress lines on stderr, the total on stdout', async () => {
    await deadLetters('cli-lines', 2500)
    const r = await runCli(['dlq', 'purge', 'cli-lines', '--yes'], { ERRAND_BROKER_URL: store.url })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain('purged 1000/2500')
    expect(r.stderr).toContain('purged 2500/2500')
    expect(r.stderr).not.toContain('\u001b[') // no cursor movement in a log
    expect(r.stdout).toContain('purged 2500 of 2500 dead letters of "cli-lines"')
    expect((await app.stats('cli-lines')).dead).toBe(0)
  }, 60_000)

  it('on a terminal (tmux): a bar that reaches 100%', async () => {
    await deadLetters('cli-bar', 3000)
    const session = `errand-cli-${randomBytes(3).toString('hex')}`
    const command = [
      `cd ${CLI_DIR}`,
      `ERRAND_BROKER_URL='${store.url}' ${cliArgv(['dlq', 'requeue', 'cli-bar', '--yes']).join(' ')}`,
      'echo "EXIT=$?"',
      'sleep 60',
    ].join('; ')
    tmux('new-session', '-d', '-s', session, '-x', '140', '-y', '20', command)
    try {
      let screen = ''
      const end = Date.now() + 45_000
      while (!screen.includes('EXIT=') && Date.now() < end) {
        await new Promise((resolve) => setTimeout(resolve, 200))
        screen = tmux('capture-pane', '-p', '-t', session)
      }
      expect(screen).toContain('EXIT=0')
      expect(screen).toMatch(/requeued \[[█░]+\] 100% 3000\/3000/)
      expect(screen).toContain('requeued 3000 of 3000 dead letters of "cli-bar"')
    } finally {
      tmux('kill-session', '-t', session)
    }
    expect(await app.stats('cli-bar')).toMatchObject({ ready: 3000, dead: 0 })
  }, 60_000)
})
