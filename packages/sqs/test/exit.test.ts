import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type SqsTestEndpoint, startSqs, uniqueQueue } from './fauxqs.js'

let sqs: SqsTestEndpoint
beforeAll(async () => {
  sqs = await startSqs()
})
afterAll(async () => {
  await sqs?.stop()
})

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

/** The child is killed after this long, so a process held open cannot hang the test. */
const KILL_AFTER_MS = 40_000

it('a process that used SQS exits within a few seconds of app.close() (long polls of 20 s in flight)', async () => {
  const child = spawn(
    process.execPath,
    [
      '--conditions=source',
      '--no-warnings',
      '--import',
      fileURLToPath(new URL('../../../test-support/ts-hooks.mjs', import.meta.url)),
      here('./child/quickstart.ts'),
    ],
    {
      cwd: here('.'),
      env: { ...process.env, ERRAND_SQS_ENDPOINT: sqs.endpoint, ERRAND_SQS_QUEUE: uniqueQueue('exit') },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  let closedAt: number | undefined
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    closedAt ??= /^closed \d+$/m.test(stdout) ? Date.now() : undefined
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS)
  const exit = await new Promise<{ code: number | null; signal: string | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  )
  clearTimeout(killer)
  expect({ code: exit.code, signal: exit.signal, stderr }).toMatchObject({ code: 0, signal: null })
  expect(stdout).toContain('result 5')
  expect(closedAt).toBeDefined()
  // Before: the polls in flight (waitTimeSeconds 20) held the process for up to 20 s.
  expect(exit.at - (closedAt as number)).toBeLessThan(6_000)
}, 60_000)
