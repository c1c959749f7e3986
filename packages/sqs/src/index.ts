import { type Adapter, type Broker, defineAdapter } from '@errand/core'
import { parseSqsUrl } from './options.js'
import { SqsBroker } from './sqs-broker.js'

export { ATTR as SQS_MESSAGE_ATTRIBUTES } from './codec.js'
export { parseSqsUrl, type SqsBrokerOptions, type SqsCredentials } from './options.js'
export { SqsBroker } from './sqs-broker.js'

/**
 * Open an SQS broker from an `sqs:` URL (core's `createApp` calls this for `sqs://` URLs). Does
 * not connect. SQS has no result backend: pair it with another store's.
 *
 * @example
 * ```ts
 * createBroker('sqs://?region=eu-west-1')
 * createBroker('sqs://?region=us-east-1&endpoint=http://127.0.0.1:4566')
 * ```
 */
export function createBroker(url: string): Broker {
  return new SqsBroker(parseSqsUrl(url))
}

/** The SQS adapter: serves `sqs://` (a broker only). Core finds it by scheme. */
export const adapter: Adapter = defineAdapter({
  name: '@errand/sqs',
  schemes: ['sqs:'],
  createBroker: (url) => new SqsBroker(parseSqsUrl(url)),
})
