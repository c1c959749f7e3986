import { startTcpProxy } from '@errand/conformance'
import pg from 'pg'
import { assertLoopback, type GarbageItem, runName, SERVERS, type StoreRig, utf8 } from './rig.js'

/** A garbage row: its body and, for some, junk in the other columns too. */
interface GarbageRow {
  readonly body: Buffer
  readonly priority?: number
  readonly deliveries?: number
  readonly item: GarbageItem
}

/** Largest `integer`: a delivery counter that cannot count one more delivery. */
const INT_MAX = 2_147_483_647

/**
 * Garbage rows: bodies that are not JSON, JSON that is no envelope, a wrong version, empty, bad
 * UTF-8; and rows with junk beside the body (a delivery counter at INT_MAX, a priority outside
 * 0..9, a negative counter), which the schema may refuse outright (then counted as refused).
 */
export function postgresGarbage(n: number): GarbageRow {
  const text = (s: string, extra: Partial<GarbageRow> = {}, reasons?: string[]): GarbageRow => ({
    body: Buffer.from(s, 'utf8'),
    ...extra,
    item: { label: JSON.stringify(s), bodies: [utf8(s)], ...(reasons && { reasons }) },
  })
  switch (n % 9) {
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
    case 5: {
      const body = Buffer.from([0xff, 0xfe, 0xc3, n % 256])
      return { body, item: { label: `binary ${body.toString('hex')}`, bodies: [new Uint8Array(body)] } }
    }
    case 6:
      return text(`deliveries INT_MAX ${n}`, { deliveries: INT_MAX }, ['undecodable', 'exhausted'])
    case 7:
      return text(`priority 99 ${n}`, { priority: 99 })
    default:
      return text(`deliveries -5 ${n}`, { deliveries: -5 })
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
  // An idle pooled connection that the server ends (a restart in a later fault test of the same
  // worker process) makes the pool emit 'error': without a listener that is an uncaught crash.
  pool.on('error', () => {})
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
      const row = postgresGarbage(n)
      // Straight into the jobs table the adapter's migrations made: a row no producer of ours wrote.
      try {
        await pool.query(
          `INSERT INTO ${schema}.jobs (queue, body, priority, deliveries) VALUES ($1, $2, $3, $4)`,
          [queue, row.body, row.priority ?? 0, row.deliveries ?? 0],
        )
      } catch (err) {
        // 23514: a CHECK constraint refused the row. Anything else is the writer's own failure.
        if ((err as { code?: unknown }).code !== '23514') throw err
        return { ...row.item, refused: String((err as Error).message) }
      }
      return row.item
    },
    async close() {
      await proxy.close()
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      await pool.end()
    },
  }
}
