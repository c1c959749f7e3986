import {
  type Adapter,
  type AdapterContext,
  type Broker,
  defineAdapter,
  type ResultBackend,
} from '@errand/core'
import { SqliteBroker } from './broker.js'
import { SqliteResultBackend } from './result-backend.js'

export { SqliteBroker } from './broker.js'
export type { DatabaseSize } from './maintenance.js'
export { SCHEMA_VERSION } from './migrations.js'
export {
  type Durability,
  parseSqliteUrl,
  type SqliteBrokerOptions,
  type SqliteConnectionOptions,
  type SqliteLogger,
  type SqliteResultBackendOptions,
} from './options.js'
export { SqliteResultBackend } from './result-backend.js'

/**
 * Opens a {@link SqliteBroker} from a `sqlite://` URL (core's `createApp` calls this, passing the app's
 * logger in `context`). Does not open the file yet.
 *
 * @example
 * ```ts
 * const broker = createBroker('sqlite://./errand.db')
 * ```
 */
export function createBroker(url: string, context?: AdapterContext): Broker {
  return new SqliteBroker(context === undefined ? { url } : { url, logger: context.logger })
}

/**
 * Opens a {@link SqliteResultBackend} from a `sqlite://` URL (core's `createApp` calls this). On
 * the broker's URL it shares the broker's connection. Does not open the file yet.
 *
 * @example
 * ```ts
 * const backend = createResultBackend('sqlite://./errand.db')
 * ```
 */
export function createResultBackend(url: string, context?: AdapterContext): ResultBackend {
  return new SqliteResultBackend(context === undefined ? { url } : { url, logger: context.logger })
}

/**
 * The SQLite adapter: serves `sqlite://` for broker and result backend, logging through the
 * app's logger. Core finds it by scheme; a broker and a backend on one path share one connection.
 */
export const adapter: Adapter = defineAdapter({
  name: '@errand/sqlite',
  schemes: ['sqlite:'],
  createBroker: (url, { logger }) => new SqliteBroker({ url, logger }),
  createResultBackend: (url, { logger }) => new SqliteResultBackend({ url, logger }),
})
