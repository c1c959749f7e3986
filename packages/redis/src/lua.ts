import { createHash } from 'node:crypto'
import type { RedisClient } from './options.js'

/**
 * A Lua script run by EVALSHA, falling back to EVAL once when the server does not know it
 * (first use, or after a restart wiped the script cache). Needs a connection without ioredis'
 * auto-pipelining, which loses the command name of `callBuffer` (see connection.ts).
 */
export class LuaScript {
  readonly source: string
  readonly sha: string

  constructor(source: string) {
    this.source = source
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  /** Run with string or Buffer arguments; bulk replies come back as Buffers. */
  async run(
    client: RedisClient,
    keys: readonly string[],
    args: readonly (string | Buffer | number)[],
  ): Promise<unknown> {
    try {
      return await client.callBuffer('EVALSHA', this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return client.callBuffer('EVAL', this.source, keys.length, ...keys, ...args)
    }
  }
}
