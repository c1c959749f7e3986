import { connect, createServer, type Server, type Socket } from 'node:net'

/** A TCP proxy on 127.0.0.1 in front of `target`, which a test can cut and restore. */
export interface CuttableProxy {
  readonly endpoint: string
  /** Destroy every connection and refuse new ones. */
  cut(): Promise<void>
  /** Accept connections again, on the same port. */
  restore(): Promise<void>
  close(): Promise<void>
}

export async function startProxy(target: string): Promise<CuttableProxy> {
  const { hostname, port: targetPort } = new URL(target)
  const sockets = new Set<Socket>()
  const track = (s: Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  }
  const makeServer = (): Server =>
    createServer((client) => {
      const upstream = connect({ host: hostname, port: Number(targetPort) })
      track(client)
      track(upstream)
      client.on('error', () => upstream.destroy())
      upstream.on('error', () => client.destroy())
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
    endpoint: `http://127.0.0.1:${port}`,
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
