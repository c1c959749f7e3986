import { defineTask, RetryTaskError } from '@errand/core'
import { z } from 'zod'

/** Adds two numbers. */
export const add = defineTask({
  name: 'quickstart.add',
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.number(),
  handler: ({ a, b }) => a + b,
})

let flaky = 0
/** Greets someone, failing its first attempt to show retries. */
export const greet = defineTask({
  name: 'quickstart.greet',
  input: z.object({ name: z.string().min(1) }),
  retry: { attempts: 3, backoff: { type: 'exponential', delayMs: 50 } },
  handler: ({ name }, ctx) => {
    if (flaky++ === 0) throw new RetryTaskError({ message: 'first attempt fails on purpose' })
    return `hello, ${name} (attempt ${ctx.attempt})`
  },
})
