import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { getRequestListener, serve } from '@hono/node-server'
import { Hono } from 'hono'
import { createDashboard, type DashboardOptions } from './dashboard.js'

/** Options of {@link createDashboardListener}: the dashboard's, with `basePath` where it is mounted. */
export type DashboardListenerOptions = DashboardOptions

/** A Node request listener serving the dashboard, plus `close()` to stop its sampling. */
export type DashboardListener = ((req: IncomingMessage, res: ServerResponse) => Promise<void>) & {
  close(): void
}

/**
 * The dashboard as a Node `(req, res)` listener, for Express, Fastify or a plain `http` server.
 * It answers the full paths under `basePath` (404 elsewhere). Express rewrites `req.url` below its
 * mount point; the listener reads `req.originalUrl` instead, so `expressApp.use('/admin/errand',
 * listener)` works with the same `basePath`.
 *
 * @example
 * ```ts
 * const listener = createDashboardListener({ app, basePath: '/admin/errand', authorize: isAdmin })
 * expressApp.use('/admin/errand', listener) // before any body parser: the dashboard reads its own forms
 * ```
 */
export function createDashboardListener(options: DashboardListenerOptions): DashboardListener {
  const dashboard = createDashboard(options)
  const base = options.basePath && options.basePath !== '/' ? options.basePath : ''
  const root = new Hono()
  // The home page is answered at the mount path; a typed trailing slash is sent there.
  if (base !== '') root.get(`${base}/`, (c) => c.redirect(base, 308))
  root.route(base === '' ? '/' : base, dashboard)
  const listener = getRequestListener(root.fetch)
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const original = (req as { originalUrl?: unknown }).originalUrl
    if (typeof original === 'string' && original.startsWith('/')) req.url = original
    return listener(req, res)
  }
  return Object.assign(handle, { close: () => dashboard.close() })
}

/** Options of {@link serveDashboard}. */
export interface ServeDashboardOptions extends Omit<DashboardOptions, 'basePath'> {
  /** Port to listen on; 0 picks a free one. Default 4000. */
  readonly port?: number
  /**
   * Address to bind. Default `127.0.0.1`: only this machine can reach the dashboard. Bind wider
   * only with an `authorize` hook (or `readOnly`), since the dashboard can requeue and delete.
   */
  readonly host?: string
}

/** A running standalone dashboard. */
export interface RunningDashboard {
  /** `http://host:port/` */
  readonly url: string
  readonly host: string
  readonly port: number
  /** Stop sampling, end open live-update streams and close the server. */
  close(): Promise<void>
}

/**
 * Run the dashboard on its own HTTP server (what `errand dashboard` does).
 *
 * @example
 * ```ts
 * const running = await serveDashboard({ app, port: 4000 })
 * console.log(`dashboard at ${running.url}`)
 * ```
 */
export async function serveDashboard(options: ServeDashboardOptions): Promise<RunningDashboard> {
  const { port = 4000, host = '127.0.0.1', ...rest } = options
  const dashboard = createDashboard(rest)
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: dashboard.fetch, port, hostname: host }) as Server
    s.once('listening', () => resolve(s))
    s.once('error', (err) => {
      dashboard.close()
      reject(err)
    })
  })
  const bound = (server.address() as AddressInfo).port
  const urlHost = host.includes(':') ? `[${host}]` : host
  return {
    url: `http://${urlHost}:${bound}/`,
    host,
    port: bound,
    close: () =>
      new Promise<void>((resolve, reject) => {
        dashboard.close()
        server.close((err) => (err ? reject(err) : resolve()))
        // Live-update streams never end by themselves.
        server.closeAllConnections()
      }),
  }
}
