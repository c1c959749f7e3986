import type { Broker, ResultBackend } from '@errand/core'
import { SqliteBroker } from './sqlite-broker.js'
import { SqliteResultBackend } from './sqlite-result-backend.js'

export type { DatabaseSize } from './maintenance.js'
export { SCHEMA_VERSION } from './migrations.js'
export {
  type Durability,
  parseSqliteUrl,
  type SqliteConnectionOptions,
  type SqliteLogger,
} from './options.js'
export { SqliteBroker, type SqliteBrokerOptions } from './sqlite-broker.js'
export { SqliteResultBackend, type SqliteResultBackendOptions } from './sqlite-result-backend.js'

/**
 * Opens a {@link SqliteBroker} from a `sqlite://` URL (core's `createApp` calls this). Does not
 * open the file yet.
 *
 * @example
 * ```ts
 * const broker = createBroker('sqlite://./errand.db')
 * ```
 */
export function createBroker(url: string): Broker {
  return new SqliteBroker({ url })
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
export function createResultBackend(url: string): ResultBackend {
  return new SqliteResultBackend({ url })
}
