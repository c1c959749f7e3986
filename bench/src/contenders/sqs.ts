/**
 * SQS contenders against fauxqs (run in a child process on 127.0.0.1, so that the server does
 * not share the contenders' event loop), or the loopback endpoint in SQS_ENDPOINT:
 * - `errand sqs`: Errand end to end (app + worker, no result backend) over @errand/sqs;
 * - `errand sqs broker`: @errand/sqs's SqsBroker driven directly (publish/consume/ack);
 * - `raw client-sqs loop`: the AWS SDK by hand: SendMessageBatch of 10, long-poll receives of
 *   10 (one loop per 10 of concurrency), DeleteMessageBatch of what each receive brought.
 *
 * Every contender counts its SQS API calls (a middleware on its SDK client) and prints, after
 * each workload, the calls per 1,000 jobs (send, receive and delete calls included).
 *
 * Run: cd bench && pnpm exec tsx --conditions=source src/cli.ts --store sqs
 */
import { type ChildProcess, spawn } from 'node:child_process'
import {
  DeleteMessageBatchCommand,
  GetQueueUrlCommand,
  type Message,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs'
import { SqsBroker, type SqsBrokerOptions } from '@errand/sqs'
import type { BenchPayload, Contender, ContenderSet } from '../contender.js'
import { brokerContender } from './broker-only.js'
import { errandContender } from './errand.js'

const _encoder = new TextEncoder()
const _decoder = new TextDecoder()
const WAIT_SECONDS = 2

/** Start fauxqs in a child process on 127.0.0.1 (or use SQS_ENDPOINT, loopback only). */
async function startEndpoint(): Promise<{ endpoint: string; stop(): void }> {
  const fromEnv = process.env.SQS_ENDPOINT
  if (fromEnv) {
    if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(new URL(fromEnv).hostname)) {
      throw new Error('SQS_ENDPOINT must be on loopback')
    }
    return { endpoint: fromEnv, stop: () => {} }
  }
  const script = `
    const { buildApp } = await import('fauxqs')
    const app = buildApp({ logger: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    process.stdout.write(String(app.server.address().port) + '\\n')
  `
  const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('../..', import.meta.url),
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`fauxqs exited with ${code}`)))
    child.stdout?.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())))
  })
  process.once('exit', () => child.kill())
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => child.kill() }
}

/** An SDK client that counts its API calls. */
function countingClient(endpoint: string): { client: SQSClient; calls: () => number; reset(): void } {
  let calls = 0
  const client = new SQSClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    requestHandler: { httpAgent: { keepAlive: true, maxSockets: 256 } },
  })
  client.middlewareStack.add(
    (next) => (args) => {
      calls++
      return next(args)
    },
    { step: 'initialize', name: 'benchCallCounter' },
  )
  return {
    client,
    calls: () => calls,
    reset: () => {
      calls = 0
    },
  }
}

/** Wraps a contender to print SQS calls per 1,000 jobs after each workload. */
function counted(inner: Contender, counter: { calls(): number; reset(): void }): Contender {
  let jobs = 0
  let enqueued = 0
  const count = <T>(n: number, run: () => Promise<T>): Promise<T> => {
    enqueued += n
    return run()
  }
  return {
    ...inner,
    name: inner.name,
    async open(queue) {
      jobs = 0
      enqueued = 0
      await inner.open(queue)
      counter.reset()
    },
    enqueueOne: (p) => count(1, () => inner.enqueueOne(p)),
    enqueueBulk: (ps) => count(ps.length, () => inner.enqueueBulk(ps)),
    startWorker: (concurrency, onJob) =>
      inner.startWorker(concurrency, (p) => {
        jobs++
        onJob(p)
      }),
    async stopWorker() {
      await inner.stopWorker()
    },
    async close() {
      const calls = counter.calls()
      const per = Math.max(jobs, enqueued)
      if (per > 0) {
        console.error(
          `  ${inner.name}: ${calls} SQS calls for ${enqueued} enqueued / ${jobs} processed = ${((calls / per) * 1000).toFixed(0)} calls per 1,000 jobs`,
        )
      }
      await inner.close()
    },
  }
}

function brokerOptions(client: SQSClient): SqsBrokerOptions {
  return { client, waitTimeSeconds: WAIT_SECONDS, onError: () => {} }
}

/** SqsBroker on its own: publish, consume, ack. */
function errandBroker(client: SQSClient): Contender {
  return brokerContender({
    name: 'errand sqs broker',
    broker: () => new SqsBroker(brokerOptions(client)),
    prepare: (broker, queue) => broker.purge(queue),
  })
}

/** The AWS SDK by hand: what a careful user writes without a library. */
function rawLoop(client: SQSClient): Contender {
  let url = ''
  let running = false
  let loops: Promise<void>[] = []
  const sendBatches = async (ps: readonly BenchPayload[]) => {
    const chunks: BenchPayload[][] = []
    for (let i = 0; i < ps.length; i += 10) chunks.push(ps.slice(i, i + 10))
    let next = 0
    const lane = async () => {
      while (next < chunks.length) {
        const chunk = chunks[next++]!
        await client.send(
          new SendMessageBatchCommand({
            QueueUrl: url,
            Entries: chunk.map((p, i) => ({ Id: String(i), MessageBody: JSON.stringify(p) })),
          }),
        )
      }
    }
    await Promise.all(Array.from({ length: 8 }, lane))
  }
  return {
    name: 'raw client-sqs loop',
    async open(q) {
      // Created through the broker so the queue has the same attributes.
      const broker = new SqsBroker(brokerOptions(client))
      await broker.stats(q)
      await broker.close()
      url = (await client.send(new GetQueueUrlCommand({ QueueName: q }))).QueueUrl!
    },
    async enqueueOne(p) {
      await client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: JSON.stringify(p) }))
    },
    enqueueBulk: sendBatches,
    async startWorker(concurrency, onJob) {
      running = true
      const max = Math.min(10, concurrency)
      const loop = async () => {
        while (running) {
          const out = await client.send(
            new ReceiveMessageCommand({
              QueueUrl: url,
              MaxNumberOfMessages: max,
              WaitTimeSeconds: WAIT_SECONDS,
              VisibilityTimeout: 30,
            }),
          )
          const messages: Message[] = out.Messages ?? []
          if (messages.length === 0) continue
          for (const m of messages) onJob(JSON.parse(m.Body!) as BenchPayload)
          await client.send(
            new DeleteMessageBatchCommand({
              QueueUrl: url,
              Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
            }),
          )
        }
      }
      loops = Array.from({ length: Math.ceil(concurrency / max) }, loop)
    },
    async stopWorker() {
      running = false
      await Promise.allSettled(loops)
    },
    async close() {
      await client.send(new PurgeQueueCommand({ QueueUrl: url }))
    },
  }
}

export const contenders: ContenderSet = async () => {
  const { endpoint } = await startEndpoint()
  const raw = countingClient(endpoint)
  const direct = countingClient(endpoint)
  const app = countingClient(endpoint)
  return [
    counted(rawLoop(raw.client), raw),
    counted(errandBroker(direct.client), direct),
    counted(
      errandContender({ name: 'errand sqs', broker: () => new SqsBroker(brokerOptions(app.client)) }),
      app,
    ),
  ]
}
