import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster, Redis } from 'ioredis'

const run = promisify(execFile)

/** A throwaway 3-master Redis Cluster on loopback, started from the `redis-server` binary. */
export interface LocalCluster {
  readonly ports: readonly number[]
  /** A new ioredis Cluster client on it (closed by `stop`). */
  client(): Cluster
  /** Shut every node down (nosave) and remove the temp dir. Safe to call after a failed start. */
  stop(): Promise<void>
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Three free consecutive ports from 7101 up (the cluster bus uses port + 10000: checked too). */
async function freePorts(): Promise<number[]> {
  for (let base = 7101; base < 7400; base += 3) {
    const ports = [base, base + 1, base + 2]
    const all = [...ports, ...ports.map((p) => p + 10_000)]
    if ((await Promise.all(all.map(portFree))).every(Boolean)) return ports
  }
  throw new Error('no free ports for a local Redis Cluster in 7101..7400')
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const start = Date.now()
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() - start > timeoutMs) throw new Error(`local cluster: timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Start the nodes, join them with `redis-cli --cluster create`, wait until every slot is served. */
export async function startLocalCluster(): Promise<LocalCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'errand-redis-cluster-'))
  const clients: Cluster[] = []
  const servers: ChildProcess[] = []
  let ports: number[] = []
  const stop = async () => {
    for (const c of clients) c.disconnect()
    // Children of this process (not daemonized), so they are reaped here: no zombies left.
    await Promise.allSettled(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            if (server.exitCode !== null || server.signalCode !== null) return resolve()
            server.once('exit', () => resolve())
            server.kill('SIGTERM')
          }),
      ),
    )
    await rm(dir, { recursive: true, force: true })
  }
  try {
    ports = await freePorts()
    for (const port of ports) {
      const server = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '5000',
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
          '--logfile',
          join(dir, `${port}.log`),
        ],
        { stdio: 'ignore' },
      )
      server.on('error', () => {})
      servers.push(server)
    }
    for (const port of ports) {
      await until(
        async () => (await run('redis-cli', ['-p', String(port), 'ping'])).stdout.trim() === 'PONG',
        10_000,
        `node ${port}`,
      )
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ])
    for (const port of ports) {
      await until(
        async () => {
          const node = new Redis({ port, host: '127.0.0.1', lazyConnect: true })
          try {
            await node.connect()
            const info = String(await node.cluster('INFO'))
            return info.includes('cluster_state:ok') && info.includes('cluster_slots_ok:16384')
          } finally {
            node.disconnect()
          }
        },
        20_000,
        `cluster_state:ok on ${port}`,
      )
    }
  } catch (err) {
    await stop()
    throw err
  }
  return {
    ports,
    client() {
      const c = new Cluster(
        ports.map((port) => ({ host: '127.0.0.1', port })),
        { redisOptions: { maxRetriesPerRequest: 20 } },
      )
      c.on('error', () => {})
      clients.push(c)
      return c
    },
    stop,
  }
}
