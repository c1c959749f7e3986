import {
  type Adapter,
  type AdapterContext,
  type Broker,
  defineAdapter,
  type ResultBackend,
} from '@errand/core'
import { PostgresBroker } from './broker.js'
import { PostgresResultBackend } from './result-backend.js'

export { PostgresBroker } from './broker.js'
export { isConnectionError } from './connection.js'
export type { JobsTableSize } from './maintenance.js'
export { SCHEMA_VERSION } from './migrations.js'
export type {
  PostgresBrokerOptions,
  PostgresConnectionOptions,
  PostgresLogger,
  PostgresResultBackendOptions,
} from './options.js'
export type { PgNotification, PgPool, PgPoolClient, PgQuery, PgQueryable, PgResult } from './pg-types.js'
export { PostgresResultBackend } from './result-backend.js'

/**
 * Opens a {@link PostgresBroker} from a `postgres://` or `postgresql://` URL (core's `createApp`
 * calls this, passing the app's logger in `context`). Does not connect.
 *
 * @example
 * ```ts
 * const broker = createBroker('postgres://app@127.0.0.1:5432/app?schema=errand')
 * ```
 */
export function createBroker(url: string, context?: AdapterContext): Broker {
  return new PostgresBroker(context === undefined ? { url } : { url, logger: context.logger })
}

/**
 * Opens a {@link PostgresResultBackend} from a `postgres://` or `postgresql://` URL (core's
 * `createApp` calls this, passing the app's logger in `context`). Does not connect.
 *
 * @example
 * ```ts
 * const backend = createResultBackend('postgres://app@127.0.0.1:5432/app')
 * ```
 */
export function createResultBackend(url: string, context?: AdapterContext): ResultBackend {
  return new PostgresResultBackend(context === undefined ? { url } : { url, logger: context.logger })
}

/**
 * The PostgreSQL adapter: serves `postgres://` and `postgresql://` for broker and result backend,
 * logging through the app's logger. Core finds it by scheme.
 */
export const adapter: Adapter = defineAdapter({
  name: '@errand/postgres',
  schemes: ['postgres:', 'postgresql:'],
  createBroker: (url, { logger }) => new PostgresBroker({ url, logger }),
  createResultBackend: (url, { logger }) => new PostgresResultBackend({ url, logger }),
})
