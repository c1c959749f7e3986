import { type Adapter, defineAdapter } from '@errand/core'
import { MySqlBroker } from './broker.js'

export { MySqlBroker } from './broker.js'
export { type MySqlBrokerOptions, mysqlBrokerOptionsSchema } from './options.js'

/**
 * The adapter: serves `mysql://` as a broker (results go to another store, e.g. `redis://` or
 * `postgres://`). Pass it to `createApp({ adapters: [adapter] })`, or import
 * `@errand/example-mysql-adapter/register` once to make `mysql://` work in every app.
 */
export const adapter: Adapter = defineAdapter({
  name: '@errand/example-mysql-adapter',
  schemes: ['mysql:'],
  createBroker: (url, { logger }) => new MySqlBroker({ url, logger }),
})
