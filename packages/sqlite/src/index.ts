import type { Broker } from '@errand/core'
import { SqliteBroker } from './sqlite-broker.js'

export type { DatabaseSize } from './maintenance.js'
export { SCHEMA_VERSION } from './migrations.js'
export {
  type Durability,
  parseSqliteUrl,
  type SqliteConnectionOptions,
  type SqliteLogger,
} from './options.js'
export { SqliteBroker, type SqliteBrokerOptions } from './sqlite-broker.js'

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
