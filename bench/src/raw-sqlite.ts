import Database from 'better-sqlite3'

const decoder = new TextDecoder()

/**
 * The raw better-sqlite3 floor shared by the canonical and side-by-side benches: Errand's table
 * shape (queue, run_at lease column, deliveries, body) and durability (WAL, `synchronous = FULL`
 * for inserts, NORMAL for leases and deletes), no framework. A worker turn is one
 * `BEGIN IMMEDIATE` transaction: delete what the previous turn handled, lease up to c more.
 */
export class RawSqliteQueue<P> {
  readonly #db: Database.Database
  readonly #queue: string
  #running = false
  #loop: Promise<void> | undefined

  /** Opens `path` in WAL mode and creates the jobs table; every job goes to `queue`. */
  constructor(path: string, queue: string) {
    this.#queue = queue
    this.#db = new Database(path)
    this.#db.pragma('journal_mode = WAL')
    this.#db.exec(`CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
      run_at INTEGER NOT NULL, deliveries INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL);
      CREATE INDEX jobs_fetch ON jobs (queue, run_at, id)`)
  }

  enqueueOne(p: P): void {
    this.#db.pragma('synchronous = FULL')
    this.#db
      .prepare('INSERT INTO jobs (queue, run_at, body) VALUES (?, ?, ?)')
      .run(this.#queue, Date.now(), Buffer.from(JSON.stringify(p)))
  }

  enqueueBulk(ps: readonly P[]): void {
    this.#db.pragma('synchronous = FULL')
    const insert = this.#db.prepare('INSERT INTO jobs (queue, run_at, body) VALUES (?, ?, ?)')
    const now = Date.now()
    this.#db
      .transaction(() => {
        for (const p of ps) insert.run(this.#queue, now, Buffer.from(JSON.stringify(p)))
      })
      .immediate()
  }

  /** Starts the lease-and-delete loop at `concurrency`; `onJob` is called once per job. */
  startWorker(concurrency: number, onJob: (p: P) => void): void {
    const db = this.#db
    const queue = this.#queue
    db.pragma('synchronous = NORMAL')
    const take = db.prepare(`UPDATE jobs SET run_at = ?, deliveries = deliveries + 1
      WHERE id IN (SELECT id FROM jobs WHERE queue = ? AND run_at <= ? ORDER BY run_at, id LIMIT ?)
      RETURNING id, deliveries, body`)
    const del = db.prepare('DELETE FROM jobs WHERE id = ? AND deliveries = ?')
    this.#running = true
    let done: { id: number; deliveries: number }[] = []
    const turn = db.transaction((now: number) => {
      for (const d of done) del.run(d.id, d.deliveries)
      return take.all(now + 30_000, queue, now, concurrency) as {
        id: number
        deliveries: number
        body: Buffer
      }[]
    })
    this.#loop = (async () => {
      while (this.#running) {
        const rows = turn.immediate(Date.now())
        done = []
        for (const row of rows) {
          onJob(JSON.parse(decoder.decode(row.body)) as P)
          done.push(row)
        }
        // Yield to the event loop between turns, as a consumer must.
        await new Promise((r) => (rows.length === 0 ? setTimeout(r, 1) : setImmediate(r)))
      }
      // Delete the last turn's jobs: they were handled.
      db.transaction(() => {
        for (const d of done) del.run(d.id, d.deliveries)
      })()
    })()
  }

  /** Stops the loop after its current turn. */
  async stopWorker(): Promise<void> {
    this.#running = false
    await this.#loop
  }

  /** Jobs of the queue still in the table. */
  remaining(): number {
    return (
      this.#db.prepare('SELECT count(*) AS n FROM jobs WHERE queue = ?').get(this.#queue) as { n: number }
    ).n
  }

  close(): void {
    this.#db.close()
  }
}
