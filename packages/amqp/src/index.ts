/** Placeholder until the adapter lands. */
export const ADAPTER = 'amqp'
