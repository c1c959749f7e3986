import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { testOptions, uniqueQueue } from './fauxqs.js'

const script = fileURLToPath(new URL('../scripts/fauxqs.mjs', import.meta.url))

it('scripts/fauxqs.mjs (pnpm --filter @errand/sqs fauxqs) serves SQS on 127.0.0.1 and stops on SIGTERM', async () => {
  const child = spawn(process.execPath, [script, '--port', '0'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  try {
    let out = ''
    const endpoint = await new Promise<string>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
        if (m?.[1] !== undefined) resolve(m[1])
      })
      void exited.then((code) => reject(new Error(`the script exited (${code}) before listening: ${out}`)))
    })
    await new Promise<void>((resolve) => {
      if (out.includes('broker URL:')) resolve()
      else child.stdout.once('data', () => resolve())
    })
    expect(out).toContain(`broker URL: sqs://?region=us-east-1&endpoint=${endpoint}`)
    const broker = new SqsBroker(testOptions(endpoint))
    try {
      await broker.connect()
      const q = uniqueQueue('script')
      await broker.publish(q, [{ body: new TextEncoder().encode('x') }])
      expect((await broker.stats(q)).ready).toBe(1)
    } finally {
      await broker.close()
    }
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
  } finally {
    clearTimeout(killer)
    child.kill('SIGKILL')
  }
}, 60_000)
