import type { App } from '@errand/core'
import type { TestContext } from 'vitest'
import { sleep, withTimeout } from './helpers.js'

// Shared by the app suite's flow-control test files.

export const NO_FLOW =
  "the app's result backend has no flow control (capabilities.flowControl false): limits, pause and debounce are refused (see the ERR_NOT_SUPPORTED test)"

/** True when `app`'s backend has flow control: `pausedQueues()` answers instead of ERR_NOT_SUPPORTED. */
export async function hasFlow(app: App): Promise<boolean> {
  try {
    await app.pausedQueues()
    return true
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_NOT_SUPPORTED') return false
    throw err
  }
}

/** Skip the test (naming why) unless `app`'s backend has flow control. */
export async function needFlow(ctx: TestContext, app: App): Promise<void> {
  if (!(await hasFlow(app))) ctx.skip(NO_FLOW)
}

/** Resolve once `condition()` holds, checking every 10 ms; reject naming `what` after `ms`. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  await withTimeout(
    (async () => {
      while (!(await condition())) await sleep(10)
    })(),
    ms,
    what,
  )
}
