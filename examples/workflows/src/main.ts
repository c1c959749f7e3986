// Workflows: an image pipeline (chain), a fan-out/fan-in count (chord), and a periodic job.
// In-memory by default; any store by URL: ERRAND_BROKER_URL=redis://127.0.0.1:6379 ERRAND_BACKEND_URL=redis://127.0.0.1:6379
import { chain, chord, createApp } from '@errand/core'
import { countWords, fetchImage, heartbeat, resize, total, upload } from './tasks.js'

const app = createApp({
  broker: process.env.ERRAND_BROKER_URL ?? 'memory://',
  backend: process.env.ERRAND_BACKEND_URL ?? 'memory://',
  tasks: [fetchImage, resize, upload, countWords, total, heartbeat],
})
await app.worker({ concurrency: 8 }).start()

// 1. A chain: each output is the next input. A step that cannot take it does not compile.
const pipeline = await app.send(
  chain(fetchImage.s({ url: 'https://origin.example.com/cat.png' }), resize.s(), upload.s()),
)
console.log('pipeline ->', await pipeline.get({ timeoutMs: 10_000 }))

// 2. A chord: count words of each document in parallel, then add up once all are in.
const docs = ['the quick brown fox', 'jumps over', 'the lazy dog and more words here']
const counted = await app.send(
  chord(
    docs.map((text) => countWords.s({ text })),
    total.s(),
  ),
)
console.log('chord ->', await counted.get({ timeoutMs: 10_000 }))

// 3. A periodic job: every 500 ms; any number of processes may run it, each tick fires once.
const schedule = await app.schedule(
  'heartbeat',
  { everyMs: 500 },
  heartbeat.s({ service: 'workflows-example' }),
)
await new Promise((resolve) => setTimeout(resolve, 1600))
await schedule.stop()

await app.close()
