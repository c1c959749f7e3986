import type { Broker } from '@errand/core'
import { PostgresBroker } from './postgres-broker.js'

export { isConnectionError } from './connection.js'
export { SCHEMA_VERSION } from './migrations.js'
export type {
  PostgresConnectionOptions,
  PostgresLogger,
} from './options.js'
export type { PgNotification, PgPool, PgPoolClient, PgQuery, PgQueryable, PgResult } from './pg-types.js'
export { PostgresBroker, type PostgresBrokerOptions } from './postgres-broker.js'

/**
 * Opens a {@link PostgresBroker} from a `postgres://` or `postgresql://` URL (core's `createApp`
 * calls this). Does not connect.
 *
 * @example
 * ```ts
 * const broker = createBroker('postgres://app@127.0.0.1:5432/app?schema=errand')
 * ```
 */
export function createBroker(url: string): Broker {
  return new PostgresBroker({ url })
}
