// Chord stress: one chord of N members finished by two workers (two apps, their own connections)
// at concurrency 20 each; prints members, workers, time and how many callbacks fired.
//   pnpm exec tsx --conditions=source src/chord-stress.ts --store redis --members 200
import { parseArgs } from 'node:util'
import { chord, createApp, defineTask, silentLogger } from '@errand/core'
import { z } from 'zod'

const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'memory' },
    members: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
  },
})
const urls: Record<string, { broker: string; backend: string }> = {
  memory: { broker: 'memory://chord', backend: 'memory://chord' },
  redis: { broker: 'redis://127.0.0.1:6379', backend: 'redis://127.0.0.1:6379' },
  postgres: {
    broker: 'postgres://postgres@127.0.0.1:5432/test?schema=errand_chord',
    backend: 'postgres://postgres@127.0.0.1:5432/test?schema=errand_chord',
  },
  amqp: { broker: 'amqp://guest:guest@127.0.0.1:5672', backend: 'redis://127.0.0.1:6379' },
}
const url = urls[values.store ?? 'memory']
if (!url) throw new Error(`unknown store ${values.store}`)
const members = Number(values.members)

for (let round = 1; round <= Number(values.rounds); round++) {
  const queue = `chord-stress-${Date.now().toString(36)}`
  let callbacks = 0
  const member = defineTask({
    name: 'stress.member',
    queue,
    input: z.number(),
    output: z.number(),
    handler: (n) => n,
  })
  const total = defineTask({
    name: 'stress.total',
    queue,
    input: z.array(z.number()),
    handler: (xs) => {
      callbacks++
      return xs.reduce((s, x) => s + x, 0)
    },
  })
  const apps = [0, 1].map(() => createApp({ ...url, tasks: [member, total], logger: silentLogger }))
  for (const app of apps) await app.worker({ concurrency: 20, queues: [queue] }).start()
  const started = performance.now()
  const r = await apps[0]!.send(
    chord(
      Array.from({ length: members }, (_, i) => member.s(i)),
      total.s(),
    ),
  )
  const sum = await r.get({ timeoutMs: 60_000 })
  const ms = performance.now() - started
  await new Promise((res) => setTimeout(res, 300))
  console.log(
    `${values.store}: ${members} members, 2 workers x concurrency 20: ${ms.toFixed(0)} ms, callbacks fired ${callbacks}, sum ${sum} (expected ${(members * (members - 1)) / 2})`,
  )
  await Promise.all(apps.map((a) => a.close()))
}
process.exit(0)
