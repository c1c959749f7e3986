// Quickstart: define two tasks, send work, run a worker, print the results.
// Runs on the in-memory store by default; set ERRAND_BROKER_URL / ERRAND_BACKEND_URL for another
// store, e.g. ERRAND_BROKER_URL=redis://127.0.0.1:6379 ERRAND_BACKEND_URL=redis://127.0.0.1:6379,
// or, durable with no server, ERRAND_BROKER_URL=sqlite://./errand.db ERRAND_BACKEND_URL=sqlite://./errand.db
import { createApp, isErrandError } from '@errand/core'
import { add, greet } from './tasks.js'

const app = createApp({
  broker: process.env.ERRAND_BROKER_URL ?? 'memory://',
  backend: process.env.ERRAND_BACKEND_URL ?? 'memory://',
  tasks: [add, greet],
})

const worker = await app.worker({ concurrency: 4 }).start()

const sum = await app.send(add.s({ a: 2, b: 3 }))
const hello = await app.send(greet.s({ name: 'Errand' }))
const many = await app.sendMany([1, 2, 3].map((n) => add.s({ a: n, b: n })))

console.log('add(2, 3) =', await sum.get({ timeoutMs: 10_000 }))
console.log('greet:', await hello.get({ timeoutMs: 10_000 }))
console.log('sendMany:', await Promise.all(many.map((r) => r.get({ timeoutMs: 10_000 }))))

try {
  // @ts-expect-error -- a string where a number belongs: rejected at send, before anything is queued
  await app.send(add.s({ a: 'two', b: 3 }))
} catch (err) {
  if (!isErrandError(err, 'ERR_VALIDATION')) throw err
  console.log('bad input refused at send:', err.message)
}

await worker.stop()
await app.close()
