import { SET_STATES } from './backend-scripts.js'
import type { RedisClient } from './options.js'

interface Write {
  readonly key: string
  readonly args: readonly (string | number)[]
  readonly resolve: (state: string) => void
  readonly reject: (err: unknown) => void
}

/** Most records one script call writes. */
const MAX_BATCH = 500

/**
 * Writes task records. The writes made in one turn of the event loop (say, the results of 50
 * tasks that finished together) go to Redis as one script call: one command to build, send and
 * parse instead of 50. On a cluster the keys hash to different slots, so each write is its own
 * call. Each write still resolves (or rejects) on its own.
 */
export class StateWriter {
  readonly #client: RedisClient
  readonly #batched: boolean
  #pending: Write[] = []

  constructor(client: RedisClient, batched: boolean) {
    this.#client = client
    this.#batched = batched
  }

  /** Write one record; resolves with the state stored after the write. */
  write(key: string, args: readonly (string | number)[]): Promise<string> {
    if (!this.#batched) return this.#send([key], args).then((states) => states[0] ?? '')
    return new Promise<string>((resolve, reject) => {
      if (this.#pending.length === 0) setImmediate(() => this.#flush())
      this.#pending.push({ key, args, resolve, reject })
    })
  }

  #flush(): void {
    const all = this.#pending
    this.#pending = []
    for (let i = 0; i < all.length; i += MAX_BATCH) {
      const batch = all.slice(i, i + MAX_BATCH)
      const args: (string | number)[] = []
      for (const w of batch) args.push(...w.args)
      this.#send(
        batch.map((w) => w.key),
        args,
      ).then(
        (states) => {
          batch.forEach((w, j) => {
            w.resolve(states[j] ?? '')
          })
        },
        (err: unknown) => {
          for (const w of batch) w.reject(err)
        },
      )
    }
  }

  async #send(keys: readonly string[], args: readonly (string | number)[]): Promise<string[]> {
    const reply = (await SET_STATES.run(this.#client, keys, args)) as Buffer[]
    return reply.map((state) => state.toString())
  }
}
