import { type Adapter, type AdapterContext, type Broker, defineAdapter } from '@errand/core'
import { SqsBroker } from './broker.js'
import { parseSqsUrl } from './options.js'

export { SqsBroker } from './broker.js'
export { ATTR as SQS_MESSAGE_ATTRIBUTES } from './codec.js'
export { parseSqsUrl, type SqsBrokerOptions, type SqsCredentials } from './options.js'

/**
 * Open an SQS broker from an `sqs:` URL (core's `createApp` calls this for `sqs://` URLs). Does
 * not connect. SQS has no result backend: pair it with another store's. `context.logger` (core
 * passes the app's) receives the adapter's warnings; without it they go to core's `consoleLogger`.
 *
 * @example
 * ```ts
 * createBroker('sqs://?region=eu-west-1')
 * createBroker('sqs://?region=us-east-1&endpoint=http://127.0.0.1:4566')
 * ```
 */
export function createBroker(url: string, context?: AdapterContext): Broker {
  return new SqsBroker(
    context === undefined ? parseSqsUrl(url) : { ...parseSqsUrl(url), logger: context.logger },
  )
}

/**
 * The SQS adapter: serves `sqs://` (a broker only). Core finds it by scheme and passes the app's
 * logger, which receives every warning of the adapter.
 */
export const adapter: Adapter = defineAdapter({
  name: '@errand/sqs',
  schemes: ['sqs:'],
  createBroker: (url, { logger }) => new SqsBroker({ ...parseSqsUrl(url), logger }),
})
