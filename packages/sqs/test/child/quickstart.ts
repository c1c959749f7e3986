// A child process for exit.test.ts: the SQS quickstart in small (connect, send, run one job,
// print its result, stop, close) with the default 20 s long polls. It prints `closed <epoch ms>`
// after `app.close()` resolves and then must exit by itself, soon.
import { createApp, defineTask } from '@errand/core'
import { z } from 'zod'

const endpoint = process.env.ERRAND_SQS_ENDPOINT
const queue = process.env.ERRAND_SQS_QUEUE
if (endpoint === undefined || queue === undefined)
  throw new Error('ERRAND_SQS_ENDPOINT and ERRAND_SQS_QUEUE are needed')

const add = defineTask({
  name: 'exit-test.add',
  queue,
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.number(),
  handler: ({ a, b }) => a + b,
})

const url = `sqs://?region=us-east-1&endpoint=${encodeURIComponent(endpoint)}&accessKeyId=test&secretAccessKey=test`
const app = createApp({ broker: url, backend: 'memory://', tasks: [add] })
const worker = await app.worker({ concurrency: 2 }).start()
const result = await app.send(add.s({ a: 2, b: 3 }))
console.log(`result ${await result.get({ timeoutMs: 20_000 })}`)
await worker.stop()
await app.close()
console.log(`closed ${Date.now()}`)
