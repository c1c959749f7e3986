/**
 * Structural types for the parts of `pg` we use, so that a caller's `pg.Pool` / `pg.Client` (of
 * any compatible 8.x version) fits without a nominal import, as kysely does.
 */

/** What a query answers. */
export interface PgResult<R = Record<string, unknown>> {
  readonly rows: R[]
  readonly rowCount: number | null
}

/** A query as `pg` accepts it; `name` makes it a prepared statement on the connection. */
export interface PgQuery {
  readonly text: string
  readonly values?: unknown[]
  readonly name?: string
}

/**
 * Anything that runs a query: a `pg.Client`, a `pg.PoolClient` (for example the one holding your
 * transaction) or a `pg.Pool`.
 */
export interface PgQueryable {
  // biome-ignore lint/suspicious/noExplicitAny: matches pg's own overloads (rows are `any` there)
  query(config: PgQuery): Promise<PgResult<any>>
}

/** A notification from LISTEN, as `pg` emits it. */
export interface PgNotification {
  readonly channel: string
  readonly payload?: string | undefined
}

/** A connection checked out of a pool. */
export interface PgPoolClient extends PgQueryable {
  release(err?: Error | boolean): void
  on(event: 'error', listener: (err: Error) => void): unknown
  on(event: 'notification', listener: (message: PgNotification) => void): unknown
  on(event: 'end', listener: () => void): unknown
  removeListener(event: 'error', listener: (err: Error) => void): unknown
  removeListener(event: 'notification', listener: (message: PgNotification) => void): unknown
  removeListener(event: 'end', listener: () => void): unknown
}

/**
 * The pool shape we need: a `pg.Pool` fits. A pool you pass in stays yours: the adapter never
 * ends it, and it holds one of its connections for LISTEN while connected.
 */
export interface PgPool {
  connect(): Promise<PgPoolClient>
  end(): Promise<void>
  on(event: 'error', listener: (err: Error) => void): unknown
}
