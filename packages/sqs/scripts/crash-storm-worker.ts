// One worker of the crash storm (crash-storm.ts): consumes the storm queue with the adapter and
// reports on stdout, one line per event: `S <job> <attempt>` when its handler starts, `A <job>`
// once acked, `D <job> <attempt>` when it gives up on a job as core does (`attempt - 1 >
// maxRedeliveries`: dead-lettered as `exhausted` without running). Killed with SIGKILL by the driver.
import type { Delivery } from '@errand/core'
import { SqsBroker } from '../src/index.js'

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is needed`)
  return value
}
const endpoint = env('STORM_ENDPOINT')
const queue = env('STORM_QUEUE')
const prefetch = Number(env('STORM_PREFETCH'))
const jobMs = Number(env('STORM_JOB_MS'))
const leaseMs = Number(env('STORM_LEASE_MS'))
const waitTimeSeconds = Number(env('STORM_WAIT_SECONDS'))
const maxRedeliveries = Number(env('STORM_MAX_REDELIVERIES'))
// Like core's worker: at most this many handlers run; deliveries past it wait in a buffer.
const concurrency = Number(process.env.STORM_CONCURRENCY ?? prefetch)

const broker = new SqsBroker({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'storm', secretAccessKey: 'storm' },
  waitTimeSeconds,
  onError: () => undefined,
})
await broker.connect()
const out = (line: string) => process.stdout.write(`${line}\n`)
let running = 0
const buffer: Delivery[] = []
function run(d: Delivery): void {
  const job = new TextDecoder().decode(d.body)
  if (d.attempt - 1 > maxRedeliveries) {
    void d.deadLetter({ reason: 'exhausted' }).then(() => out(`D ${job} ${d.attempt}`))
    return
  }
  running++
  out(`S ${job} ${d.attempt}`)
  setTimeout(() => {
    void d
      .ack()
      .then(
        () => out(`A ${job}`),
        () => undefined,
      )
      .finally(() => {
        running--
        const next = buffer.shift()
        if (next !== undefined) run(next)
      })
  }, jobMs)
}
await broker.consume(
  queue,
  (d) => {
    if (running < concurrency) run(d)
    else buffer.push(d)
  },
  { prefetch, leaseMs },
)
out('READY')
