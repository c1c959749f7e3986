import type { LuaScript } from './lua.js'
import type { RedisClient } from './options.js'

interface Call {
  readonly script: LuaScript
  readonly keys: readonly string[]
  readonly args: readonly (string | number)[]
  readonly resolve: (value: unknown) => void
  readonly reject: (err: unknown) => void
}

/**
 * Sends the script calls made in one turn of the event loop as one pipeline: one socket write
 * and one read for, say, the 50 results that 50 tasks finishing together store. Each call still
 * resolves or rejects on its own. On a cluster (keys of different calls hash to different slots)
 * calls go out one by one. Replies are strings.
 */
export class TickBatch {
  readonly #client: RedisClient
  readonly #enabled: boolean
  #pending: Call[] = []

  constructor(client: RedisClient, enabled: boolean) {
    this.#client = client
    this.#enabled = enabled
  }

  run(script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    if (!this.#enabled) return script.run(this.#client, keys, args)
    return new Promise((resolve, reject) => {
      if (this.#pending.length === 0) setImmediate(() => this.#flush())
      this.#pending.push({ script, keys, args, resolve, reject })
    })
  }

  #flush(): void {
    const batch = this.#pending
    this.#pending = []
    if (batch.length === 1) {
      const only = batch[0]!
      only.script.run(this.#client, only.keys, only.args).then(only.resolve, only.reject)
      return
    }
    const pipeline = this.#client.pipeline()
    for (const call of batch) pipeline.evalsha(call.script.sha, call.keys.length, ...call.keys, ...call.args)
    pipeline.exec().then(
      (results) => {
        batch.forEach((call, i) => {
          const [err, value] = results?.[i] ?? [new Error('no reply in pipeline'), undefined]
          if (err === null) call.resolve(value)
          else if (err.message.startsWith('NOSCRIPT'))
            call.script.run(this.#client, call.keys, call.args).then(call.resolve, call.reject)
          else call.reject(err)
        })
      },
      (err: unknown) => {
        for (const call of batch) call.reject(err)
      },
    )
  }
}
