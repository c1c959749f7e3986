import { Batcher, batchOk } from '@errand/core'
import { SET_STATES } from './backend-scripts.js'
import type { RedisClient } from './options.js'

interface Write {
  readonly key: string
  readonly args: readonly (string | number)[]
}

/** Most records one script call writes. */
const MAX_BATCH = 500

/**
 * Writes task records. The writes made in one turn of the event loop (say, the results of 50
 * tasks that finished together) go to Redis as one script call through core's `Batcher`: one
 * command to build, send and parse instead of 50. On a cluster the keys hash to different slots,
 * so each write is its own call. Each write still resolves (or rejects) on its own.
 */
export class StateWriter {
  readonly #client: RedisClient
  readonly #batcher: Batcher<Write, string> | undefined

  constructor(client: RedisClient, batched: boolean) {
    this.#client = client
    this.#batcher = batched
      ? new Batcher<Write, string>({
          maxItems: MAX_BATCH,
          flush: async (writes) =>
            batchOk(
              await this.#send(
                writes.map((w) => w.key),
                writes.flatMap((w) => w.args),
              ),
            ),
        })
      : undefined
  }

  /** Write one record; resolves with the state stored after the write. */
  async write(key: string, args: readonly (string | number)[]): Promise<string> {
    if (this.#batcher !== undefined) return this.#batcher.add({ key, args })
    return (await this.#send([key], args))[0] ?? ''
  }

  async #send(keys: readonly string[], args: readonly (string | number)[]): Promise<string[]> {
    const reply = (await SET_STATES.run(this.#client, keys, args)) as Buffer[]
    // One state per key, in order (a short reply fails the missing ones in the batcher).
    return reply.map((state) => state.toString())
  }
}
