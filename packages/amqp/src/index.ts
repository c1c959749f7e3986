import { type Adapter, type AdapterContext, type Broker, defineAdapter } from '@errand/core'
import { AmqpBroker } from './broker.js'

export { AmqpBroker } from './broker.js'
export { attemptOf, messageIdOf } from './headers.js'
export {
  checkQueueName,
  deadQueueName,
  delayQueueName,
  MAX_DELAY_LEVELS,
  MAX_QUEUE_NAME_BYTES,
} from './names.js'
export {
  type AmqpBrokerOptions,
  type AmqpQueueType,
  DEFAULT_DELAY_LEVELS,
  DEFAULT_MAX_PRIORITY,
  DEFAULT_RECONNECT_WAIT_MS,
} from './options.js'

/**
 * The broker for an `amqp://` or `amqps://` URL (the older loose factory; core uses
 * {@link adapter}). Validates the URL (throws `ERR_INVALID_OPTION`); connects only on
 * `connect()`. Logs through `context.logger` when given (core's console logger otherwise).
 * RabbitMQ has no result store: pair it with a Redis or Postgres result backend.
 *
 * @example
 * ```ts
 * const broker = createBroker('amqp://guest:guest@127.0.0.1:5672/?maxPriority=5')
 * ```
 */
export function createBroker(url: string, context?: Partial<AdapterContext>): Broker {
  // A host that passes a context expects the adapter's lines in its logger, not on the console.
  return new AmqpBroker(context?.logger === undefined ? url : { url, logger: context.logger })
}

/**
 * The RabbitMQ adapter: serves `amqp://` and `amqps://` (a broker only), logging through the
 * app's logger. Core finds it by scheme.
 */
export const adapter: Adapter = defineAdapter({
  name: '@errand/amqp',
  schemes: ['amqp:', 'amqps:'],
  createBroker: (url, { logger }) => new AmqpBroker({ url, logger }),
})
