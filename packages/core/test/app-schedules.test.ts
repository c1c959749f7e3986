import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createApp, defineTask } from '../src/index.js'

describe('app.schedules()', () => {
  it('lists the schedules armed by this app with their spec and next tick, and forgets stopped ones', async () => {
    const ping = defineTask({ name: 'sched.ping', input: z.object({}), handler: () => 1 })
    const app = createApp({ broker: `memory://sched-${Math.random()}`, backend: 'memory://', tasks: [ping] })
    try {
      expect(app.schedules()).toEqual([])
      const nightly = await app.schedule('nightly', '0 3 * * *', ping.s({}), { timezone: 'Europe/Paris' })
      const often = await app.schedule('often', { everyMs: 3_600_000 }, ping.s({}))
      const list = app.schedules()
      expect(list.map((s) => [s.name, s.when, s.timezone])).toEqual([
        ['nightly', '0 3 * * *', 'Europe/Paris'],
        ['often', 'every 3600000 ms', undefined],
      ])
      for (const s of list) expect(s.nextTick?.getTime()).toBeGreaterThan(Date.now())
      expect(list[0]?.nextTick?.getTime()).toBe(nightly.nextTick()?.getTime())
      await often.stop()
      expect(app.schedules().map((s) => s.name)).toEqual(['nightly'])
    } finally {
      await app.close()
    }
  })
})
