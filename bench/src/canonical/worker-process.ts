/**
 * One worker process of a multi-process drain (`drain-c<k>-p<procs>`), forked by run-one.ts with
 * an IPC channel. It runs its contender's `setup()` on the queue the parent set up (same store,
 * contender and run id: contenders whose set-up is not safe to repeat list `drain-c*-p*` as
 * unsupported), consumes at concurrency k, and reports every 5 ms how many jobs it handled and when it handled the last. On
 * `stop` it stops its worker and sends the numbers of the jobs it handled, then exits; the parent
 * verifies the union and tears the queue down.
 */
import { parseArgs } from 'node:util'
import type { StoreModule } from './types.js'

const { values } = parseArgs({
  options: {
    store: { type: 'string' },
    contender: { type: 'string' },
    id: { type: 'string' },
    concurrency: { type: 'string' },
  },
})

/** What this process tells its parent. */
export type WorkerMessage =
  | { readonly kind: 'ready' }
  /** `lastAt`: when the last of them was handled, ms since the epoch (sub-ms). */
  | { readonly kind: 'count'; readonly handled: number; readonly lastAt: number }
  | { readonly kind: 'done'; readonly handled: readonly number[] }
  | { readonly kind: 'error'; readonly error: string }

/** Send, then run `then` once the message is written (an exit right after a send can drop it). */
const send = (m: WorkerMessage, then?: () => void) => process.send?.(m, undefined, {}, () => then?.())

try {
  const { store } = (await import(`./stores/${values.store}.js`)) as { store: StoreModule }
  const c = store.create(values.contender ?? '', values.id ?? '')
  await c.setup()
  const handled: number[] = []
  let lastAt = 0
  await c.startWorker(Number(values.concurrency), (p) => {
    handled.push(p.n)
    lastAt = performance.timeOrigin + performance.now()
  })
  send({ kind: 'ready' })
  const timer = setInterval(() => send({ kind: 'count', handled: handled.length, lastAt }), 5)
  process.on('message', (m) => {
    if (m !== 'stop') return
    clearInterval(timer)
    void c.stopWorker().then(
      () => send({ kind: 'done', handled }, () => process.exit(0)),
      (err: unknown) => send({ kind: 'error', error: String(err) }, () => process.exit(1)),
    )
  })
} catch (err) {
  send({ kind: 'error', error: (err as Error).stack ?? String(err) }, () => process.exit(1))
}
