import { startTcpProxy } from '@errand/conformance'
import pg from 'pg'
import { assertLoopback, type GarbageItem, runName, SERVERS, type StoreRig, utf8 } from './rig.js'

/** Garbage job bodies: not JSON, JSON that is no envelope, a wrong version, empty, bad UTF-8. */
export function postgresGarbage(n: number): { body: Buffer; item: GarbageItem } {
  const text = (s: string) => ({
    body: Buffer.from(s, 'utf8'),
    item: { label: JSON.stringify(s), bodies: [utf8(s)] },
  })
  switch (n % 6) {
    case 0:
      return text(`not json ${n}`)
    case 1:
      return text(`{"v":1,"junk":${n}}`)
    case 2:
      return text(`{"v":999,"id":"junk-${n}","task":"chaos.single"}`)
    case 3:
      return { body: Buffer.alloc(0), item: { label: 'empty body', bodies: [new Uint8Array(0)] } }
    case 4:
      return text(`x:5:z${n}`)
    default: {
      const body = Buffer.from([0xff, 0xfe, 0xc3, n % 256])
      return { body, item: { label: `binary ${body.toString('hex')}`, bodies: [new Uint8Array(body)] } }
    }
  }
}

/** The Postgres rig: broker, result backend and run log in a schema of its own, behind one proxy. */
export async function openPostgresRig(): Promise<StoreRig> {
  assertLoopback(SERVERS.postgres)
  const name = runName('postgres')
  const queue = name
  const schema = name.replace(/-/g, '_')
  const server = new URL(SERVERS.postgres)
  const serverPort = Number(server.port || 5432)
  const proxy = await startTcpProxy({ host: server.hostname, port: serverPort })
  const url = (port: number) => {
    const u = new URL(SERVERS.postgres)
    u.port = String(port)
    u.searchParams.set('schema', schema)
    return u.toString()
  }
  const plain = new URL(SERVERS.postgres)
  plain.port = String(serverPort)
  const pool = new pg.Pool({ connectionString: plain.toString(), max: 2 })
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
  return {
    store: 'postgres',
    queue,
    worker: { brokerUrl: url(proxy.port), backendUrl: url(proxy.port) },
    direct: { brokerUrl: url(serverPort), backendUrl: url(serverPort) },
    proxies: [proxy],
    runLog: { kind: 'postgres', url: plain.toString(), table: `${schema}.chaos_runs` },
    backendKind: 'postgres',
    async writeGarbage(n) {
      const { body, item } = postgresGarbage(n)
      // Straight into the jobs table the adapter's migrations made: a row no producer of ours wrote.
      await pool.query(`INSERT INTO ${schema}.jobs (queue, body) VALUES ($1, $2)`, [queue, body])
      return item
    },
    async close() {
      await proxy.close()
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      await pool.end()
    },
  }
}
