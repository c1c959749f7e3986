import type { Broker, OutgoingMessage } from './broker.js'

/**
 * A broker that can publish inside a caller's own transaction: the messages exist iff that
 * transaction commits. This is what `app.send(sig, { tx })` needs; `@errand/postgres` implements
 * it with the caller's `pg` client.
 *
 * `Tx` is the store's transaction handle (a `pg` client in `BEGIN` for PostgreSQL). Core never
 * looks inside it: it passes `send`'s `tx` option through unchanged, so the default is `unknown`
 * and an implementation checks the handle it is given.
 *
 * @example
 * ```ts
 * await client.query('BEGIN')
 * await client.query('INSERT INTO orders …')
 * await app.send(confirm.s({ orderId }), { tx: client })
 * await client.query('COMMIT')
 * ```
 */
export interface TransactionalBroker<Tx = unknown> extends Broker {
  /**
   * Publish `messages` to `queue` with `tx`, the caller's open transaction. Resolves once the
   * store has them in that transaction; consumers see them only after it commits.
   */
  publishInTransaction(tx: Tx, queue: string, messages: readonly OutgoingMessage[]): Promise<void>
}

/**
 * Whether `broker` can publish in a caller's transaction (it has `publishInTransaction`). The one
 * check core makes before `send({ tx })`; a broker without it gets `ERR_NOT_SUPPORTED`.
 */
export function isTransactionalBroker(broker: Broker): broker is TransactionalBroker {
  return typeof (broker as Partial<TransactionalBroker>).publishInTransaction === 'function'
}
