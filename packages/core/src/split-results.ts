import type { Broker } from './broker.js'
import type { ResultBackend } from './result-backend.js'

/**
 * The warning logged at connect when results stay in this process while the broker is shared
 * (`backend: 'memory://'` with `broker: 'redis://…'`), else undefined.
 *
 * A warning, not a refusal: one process that both sends and runs its tasks (a test against a real
 * broker, a small service) is a correct use of that pairing, and refusing it would break apps that
 * work today. Left silent, the other use (producer and worker in two processes) is the classic
 * first-hour hang: `get()` waits out its timeout while the worker stored the result in its own
 * memory. So it is said once per app at connect, through the app's logger, and again in the
 * `ERR_TIMEOUT` message of `get()`.
 */
export function localResultsWarning(broker: Broker, backend: ResultBackend | undefined): string | undefined {
  if (backend?.name !== 'memory' || broker.name === 'memory') return undefined
  return (
    `results are kept in this process's memory (backend memory://) while the broker (${broker.name}) ` +
    'is shared with other processes: a worker in another process keeps results, group counters and ' +
    "schedule claims in its own memory, so this process's result.get() waits until its timeout and " +
    'chords do not complete across processes. Pass a shared backend (e.g. the redis:// or postgres:// ' +
    'URL of your store); a memory backend is right only when one process both sends and runs every task'
  )
}
