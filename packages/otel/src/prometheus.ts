import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ErrandError } from '@errand/core'
import type { MeterProvider } from '@opentelemetry/api'

/** Options of {@link startPrometheusExporter}. */
export interface PrometheusOptions {
  /** Port; 0 picks a free one. Default 9464 (Prometheus' registered port for OpenTelemetry). */
  readonly port?: number
  /** Address to bind. Default `127.0.0.1`: expose it deliberately, metrics name your tasks and queues. */
  readonly host?: string
  /** Path served. Default `/metrics`. */
  readonly path?: string
}

/** A running Prometheus endpoint. */
export interface PrometheusEndpoint {
  /** `http://host:port/metrics`. */
  readonly url: string
  readonly port: number
  /** Pass it to `errandOtel({ meterProvider })` (or register it globally). */
  readonly meterProvider: MeterProvider
  /** Stop serving and shut the meter provider down. */
  close(): Promise<void>
}

/**
 * Serve the metrics for Prometheus to scrape, with the official `@opentelemetry/exporter-prometheus`
 * on a `@opentelemetry/sdk-metrics` meter provider. Both are optional peer dependencies: install
 * them (`npm i @opentelemetry/exporter-prometheus @opentelemetry/sdk-metrics`); without them this
 * throws `ERR_ADAPTER_NOT_INSTALLED`.
 *
 * @example
 * ```ts
 * const prom = await startPrometheusExporter({ port: 9464 })
 * const otel = errandOtel({ meterProvider: prom.meterProvider })
 * ```
 */
export async function startPrometheusExporter(options: PrometheusOptions = {}): Promise<PrometheusEndpoint> {
  const [exporterModule, sdkModule] = await Promise.all([
    import('@opentelemetry/exporter-prometheus'),
    import('@opentelemetry/sdk-metrics'),
  ]).catch((cause: unknown) => {
    throw new ErrandError(
      'ERR_ADAPTER_NOT_INSTALLED',
      'startPrometheusExporter needs @opentelemetry/exporter-prometheus and @opentelemetry/sdk-metrics: install them',
      { cause },
    )
  })
  const path = options.path ?? '/metrics'
  const host = options.host ?? '127.0.0.1'
  // The exporter's own server binds every interface unless told; ours binds `host` and reports
  // the port it got (port 0), and the exporter only renders.
  const exporter = new exporterModule.PrometheusExporter({ preventServerStart: true })
  const meterProvider = new sdkModule.MeterProvider({ readers: [exporter] })
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url ?? '').split('?')[0] === path) {
      exporter.getMetricsRequestHandler(req, res)
      return
    }
    res.statusCode = 404
    res.end('not found\n')
  })
  server.listen(options.port ?? 9464, host)
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  const shownHost = host.includes(':') ? `[${host}]` : host
  return {
    url: `http://${shownHost}:${port}${path}`,
    port,
    meterProvider,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await meterProvider.shutdown()
    },
  }
}
