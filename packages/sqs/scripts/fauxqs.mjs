// Start the fauxqs SQS emulator on its own, on 127.0.0.1, for examples and manual runs against
// `sqs://` URLs (the tests start their own in-process copy).
//
//   pnpm --filter @errand/sqs fauxqs                 # port 4566
//   pnpm --filter @errand/sqs fauxqs --port 9324     # or FAUXQS_PORT=9324; 0 = any free port
//
// fauxqs's own `startFauxqs()` listens on every interface whatever it is asked, so the app is
// built and bound to loopback here instead. State is in memory: it is gone when this stops.
import { parseArgs } from 'node:util'
import { buildApp } from 'fauxqs'

const { values } = parseArgs({
  options: { port: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
})
if (values.help) {
  console.log('usage: pnpm --filter @errand/sqs fauxqs [--port <n>]   (default 4566, or FAUXQS_PORT)')
  process.exit(0)
}
const rawPort = values.port ?? process.env.FAUXQS_PORT ?? '4566'
const port = Number(rawPort)
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(`fauxqs: --port must be an integer 0-65535, got "${rawPort}"`)
  process.exit(2)
}

const app = buildApp({ logger: false })
try {
  await app.listen({ port, host: '127.0.0.1' })
} catch (err) {
  console.error(`fauxqs: cannot listen on 127.0.0.1:${port}: ${err instanceof Error ? err.message : err}`)
  process.exit(1)
}
const address = app.server.address()
const bound = typeof address === 'object' && address !== null ? address.port : port
const endpoint = `http://127.0.0.1:${bound}`
console.log(`fauxqs listening on ${endpoint} (Ctrl-C stops it; nothing is kept)`)
console.log(`broker URL: sqs://?region=us-east-1&endpoint=${endpoint}&accessKeyId=test&secretAccessKey=test`)

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (stopping) process.exit(1)
    stopping = true
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  })
}
