import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy on 127.0.0.1 in front of a real server, which a fault test can cut and restore.
 * Cutting destroys every open connection and refuses new ones, as a network partition or a
 * server crash looks to a client; restoring listens again on the same port, so the client's URL
 * stays valid. Loopback only: the proxy listens on 127.0.0.1 and the target must be local too.
 */
export interface CuttableProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number
  /** `http://127.0.0.1:<port>` (for HTTP endpoints such as SQS). */
  readonly endpoint: string
  /** Connections accepted so far (a test can check that a client really went through). */
  readonly accepted: number
  /** Destroy every connection and refuse new ones. Idempotent. */
  cut(): Promise<void>
  /** Accept connections again, on the same port. Idempotent. */
  restore(): Promise<void>
  /** Cut for good. */
  close(): Promise<void>
}

/**
 * Start a {@link CuttableProxy} in front of `target`: a URL (`redis://127.0.0.1:6379`,
 * `http://127.0.0.1:4566`) or `{ host, port }`.
 *
 * @example
 * const proxy = await startTcpProxy('redis://127.0.0.1:6379')
 * const app = createApp({ broker: `redis://127.0.0.1:${proxy.port}/3` })
 * await proxy.cut() // the app sees a dead connection
 * await proxy.restore() // and reconnects
 */
export async function startTcpProxy(target: string | { host: string; port: number }): Promise<CuttableProxy> {
  const { host, port: targetPort } =
    typeof target === 'string'
      ? { host: new URL(target).hostname, port: Number(new URL(target).port) }
      : target
  const sockets = new Set<Socket>()
  let accepted = 0
  const track = (s: Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  }
  const makeServer = (): Server =>
    createServer((client) => {
      accepted++
      const upstream = connect({ host, port: targetPort })
      track(client)
      track(upstream)
      client.on('error', () => upstream.destroy())
      upstream.on('error', () => client.destroy())
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
      client.pipe(upstream)
      upstream.pipe(client)
    })
  const listen = (server: Server, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        const address = server.address()
        resolve(typeof address === 'object' && address !== null ? address.port : port)
      })
    })
  let server = makeServer()
  const port = await listen(server, 0)
  let up = true
  const stop = async () => {
    if (!up) return
    up = false
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const s of sockets) s.destroy()
    await closed
  }
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted
    },
    cut: stop,
    async restore() {
      if (up) return
      server = makeServer()
      await listen(server, port)
      up = true
    },
    close: stop,
  }
}
