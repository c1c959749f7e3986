import { runBrokerConformance, runResultBackendConformance, startTcpProxy } from '@errand/conformance'
import { silentLogger } from '@errand/core'
import { afterAll } from 'vitest'
import { PostgresBroker, PostgresResultBackend } from '../src/index.js'
import { DATABASE_URL, dropSchema, schemaUrl, uniqueSchema } from './helpers.js'

// The app suite is in conformance-app.test.ts, so that the two files run in parallel.
const schema = uniqueSchema('conf')
const url = schemaUrl(schema)
// This file's own loopback proxy to the shared server, for the outage test: cutting it
// disturbs nobody else.
const proxy = await startTcpProxy({
  host: new URL(DATABASE_URL).hostname,
  port: Number(new URL(DATABASE_URL).port || 5432),
})
const proxied = new URL(url)
proxied.hostname = '127.0.0.1'
proxied.port = String(proxy.port)
afterAll(() => Promise.all([dropSchema(schema), proxy.close()]))

runBrokerConformance({
  name: 'postgres',
  factory: () => new PostgresBroker({ url }),
  outage: {
    // A settle retries through an outage for reconnectTimeoutMs (default 30 s): keep it short.
    broker: () =>
      new PostgresBroker({
        url: proxied.toString(),
        reconnectTimeoutMs: 1000,
        connectTimeoutMs: 1000,
        closeTimeoutMs: 1000,
        logger: silentLogger,
      }),
    cut: () => proxy.cut(),
    restore: () => proxy.restore(),
  },
})
runResultBackendConformance({
  name: 'postgres',
  factory: () => new PostgresResultBackend({ url, eventRetention: 100 }),
  eventRetention: 100,
})
