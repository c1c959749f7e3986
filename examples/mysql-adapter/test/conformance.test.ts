// The proof of "anyone can write an adapter": a broker outside packages/, on MariaDB/MySQL,
// running the same shared suites as Errand's own stores, from its own package.
import { runAppConformance, runBrokerConformance, startTcpProxy } from '@errand/conformance'
import { MemoryResultBackend, silentLogger } from '@errand/core'
import { createPool } from 'mysql2/promise'
import { afterAll } from 'vitest'
import { MySqlBroker } from '../src/index.js'

const url = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test'
// A table pair of this run's own: nothing shared with another run, dropped at the end.
const table = `errand_conf_${process.pid}_${Date.now().toString(36)}`

// A loopback proxy of this file's own, which the outage test cuts (nobody else goes through it).
const proxy = await startTcpProxy({ host: new URL(url).hostname, port: Number(new URL(url).port || 3306) })
const proxied = new URL(url)
proxied.hostname = '127.0.0.1'
proxied.port = String(proxy.port)

afterAll(async () => {
  await proxy.close()
  const pool = createPool({ uri: url })
  await pool.query(`DROP TABLE IF EXISTS \`${table}_jobs\`, \`${table}_dead\``)
  await pool.end()
})

const broker = () => new MySqlBroker({ url, table, pollMs: 100, logger: silentLogger })

runBrokerConformance({
  name: 'mysql',
  factory: broker,
  stressMessages: 2_000,
  outage: {
    broker: () => new MySqlBroker({ url: proxied.toString(), table, pollMs: 100, logger: silentLogger }),
    cut: () => proxy.cut(),
    restore: () => proxy.restore(),
  },
})

runAppConformance({
  name: 'mysql + memory results',
  broker,
  backend: () => new MemoryResultBackend({ name: `mysql-app-${table}` }),
})
