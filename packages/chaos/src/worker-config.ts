import type { RunLogSpec } from './run-log.js'

/** What a worker child process needs, passed as JSON in the environment (`CHAOS_WORKER`). */
export interface WorkerConfig {
  /** Broker URL, through the cuttable proxy. */
  readonly brokerUrl: string
  /** Result backend URL, through the cuttable proxy. */
  readonly backendUrl: string
  readonly queue: string
  readonly runLog: RunLogSpec
  readonly concurrency: number
  /** Short, so that deliveries of a killed worker come back within seconds. */
  readonly leaseMs: number
  readonly shutdownGraceMs: number
}

/** The environment variable that carries a {@link WorkerConfig}. */
export const WORKER_CONFIG_ENV = 'CHAOS_WORKER'

/** The line a worker prints on stdout once it consumes. */
export const READY_LINE = 'chaos-worker-ready'
