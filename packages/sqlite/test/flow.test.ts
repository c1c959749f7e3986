import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ClosedError, hasFlowControl, MAX_FLOW_KEY_LENGTH } from '@errand/core'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { SCHEMA_VERSION, SqliteResultBackend } from '../src/index.js'
import { MIGRATIONS } from '../src/migrations.js'
import { fileUrl, tempDir } from './helpers.js'

const tmp = tempDir('flow')
afterAll(() => tmp.remove())

const pathOf = (url: string) => url.slice('sqlite://'.length)
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const FIXTURE = fileURLToPath(new URL('./fixtures/flow-child.ts', import.meta.url))
/** Runs the children on the workspace's TypeScript sources (test-support/README.md). */
const TS_HOOKS = fileURLToPath(new URL('../../../test-support/ts-hooks.mjs', import.meta.url))

interface Racer {
  readonly ready: Promise<void>
  readonly result: Promise<{ slots: number[]; rates: number[] }>
  go(at: number): void
  kill(): void
}

/** Forks fixtures/flow-child.ts with `env`: its own process, its own connection to the file. */
function racer(env: Record<string, string>): Racer {
  const child = fork(FIXTURE, [], {
    execArgv: ['--conditions=source', '--import', TS_HOOKS],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<never>((_, reject) =>
    child.on('close', (code) => reject(new Error(`child exited (${code}) early; output: ${output}`))),
  )
  const message = (key: string) =>
    Promise.race([
      new Promise<Record<string, unknown>>((resolve, reject) =>
        child.on('message', (m: Record<string, unknown>) => {
          if (typeof m.error === 'string') reject(new Error(`child failed: ${m.error}`))
          else if (key in m) resolve(m)
        }),
      ),
      exited,
    ])
  const ready = message('ready').then(() => undefined)
  const result = message('slots') as Promise<{ slots: number[]; rates: number[] }>
  // A failure seen through one promise must not surface as an unhandled rejection of the other.
  ready.catch(() => undefined)
  result.catch(() => undefined)
  return { ready, result, go: (at) => child.send({ at }), kill: () => child.kill('SIGKILL') }
}

describe('sqlite flow control', () => {
  it('says it has flow control', () => {
    const backend = new SqliteResultBackend({ url: 'sqlite::memory:' })
    expect(backend.capabilities.flowControl).toBe(true)
    expect(hasFlowControl(backend)).toBe(true)
  })

  it('processes racing on one file: exactly max slots and max rate starts are handed out (max 3 and 20)', async () => {
    const url = fileUrl(tmp.dir)
    // Created (and migrated) before the children start, so they race on the calls, not on setup.
    const backend = new SqliteResultBackend({ url })
    await backend.connect()
    const rounds = 8
    // 4 processes × 15 calls: max 3 is decided in the first calls; max 20 keeps them contending.
    const maxes = [3, 20]
    const racers = [0, 1, 2, 3].map((n) =>
      racer({
        DB_URL: url,
        TAG: `p${n}`,
        ATTEMPTS: '15',
        ROUNDS: String(rounds),
        MAXES: maxes.join(','),
        ROUND_MS: '200',
      }),
    )
    try {
      await Promise.all(racers.map((r) => r.ready))
      // One start time for all, so every round's calls really meet at the lock.
      const at = Date.now() + 300
      for (const r of racers) r.go(at)
      const results = await Promise.all(racers.map((r) => r.result))
      for (let round = 0; round < rounds; round++) {
        const max = maxes[round % maxes.length]!
        const slots = results.map((r) => r.slots[round]!)
        const rates = results.map((r) => r.rates[round]!)
        expect(
          slots.reduce((a, b) => a + b),
          `slots of round ${round}: ${slots.join(', ')}`,
        ).toBe(max)
        expect(
          rates.reduce((a, b) => a + b),
          `rate starts of round ${round}: ${rates.join(', ')}`,
        ).toBe(max)
        // The store agrees: one more holder is refused, one more start waits.
        expect(await backend.acquireSlot(`slot-${round}`, 'late', max, 60_000)).toBe(false)
        expect(await backend.takeRate(`rate-${round}`, max, 60_000)).toBeGreaterThan(0)
      }
    } finally {
      for (const r of racers) r.kill()
      await backend.close()
    }
  }, 120_000)

  describe('on a file', () => {
    const url = fileUrl(tmp.dir)
    const backend = new SqliteResultBackend({ url, cleanupIntervalMs: 0 })
    afterAll(() => backend.close())

    it('takeRate: max starts per window, then the wait until the oldest leaves it', async () => {
      expect(await backend.takeRate('r1', 2, 300)).toBe(0)
      const first = Date.now()
      expect(await backend.takeRate('r1', 2, 300)).toBe(0)
      const before = Date.now()
      const wait = await backend.takeRate('r1', 2, 300)
      expect(wait).toBeGreaterThanOrEqual(1)
      // The oldest start was recorded before `first`, and this call ran after `before`.
      expect(wait).toBeLessThanOrEqual(300 - (before - first))
      // Keys are apart: another key is not limited by r1.
      expect(await backend.takeRate('r2', 1, 300)).toBe(0)
      await sleep(wait + 5)
      expect(await backend.takeRate('r1', 2, 300)).toBe(0)
    })

    it('acquireSlot: max holders, a holder renews, release frees, an expired lease frees', async () => {
      expect(await backend.acquireSlot('g', 'a', 2, 60_000)).toBe(true)
      expect(await backend.acquireSlot('g', 'b', 2, 600)).toBe(true)
      expect(await backend.acquireSlot('g', 'c', 2, 60_000)).toBe(false)
      expect(await backend.acquireSlot('g', 'a', 2, 60_000)).toBe(true)
      await backend.releaseSlot('g', 'a')
      await backend.releaseSlot('g', 'nobody')
      expect(await backend.acquireSlot('g', 'c', 2, 60_000)).toBe(true)
      expect(await backend.acquireSlot('g', 'd', 2, 60_000)).toBe(false)
      await sleep(650)
      expect(await backend.acquireSlot('g', 'd', 2, 60_000)).toBe(true)
      // b's lease ran out and its slot went to d: b must take one again like anyone else.
      expect(await backend.acquireSlot('g', 'b', 2, 60_000)).toBe(false)
    })

    it('setPaused / pausedQueues: sorted, idempotent, resumed queues gone', async () => {
      await backend.setPaused('zeta', true)
      await backend.setPaused('alpha', true)
      await backend.setPaused('alpha', true)
      await backend.setPaused('mid', true)
      await backend.setPaused('never-paused', false)
      expect(await backend.pausedQueues()).toEqual(['alpha', 'mid', 'zeta'])
      await backend.setPaused('mid', false)
      expect(await backend.pausedQueues()).toEqual(['alpha', 'zeta'])
    })

    it('putValue overwrites a setIfAbsent claim and expires', async () => {
      expect(await backend.setIfAbsent('debounce:x', 'first', 60_000)).toBe(true)
      await backend.putValue('debounce:x', 'second', 400)
      expect(await backend.getValue('debounce:x')).toBe('second')
      expect(await backend.setIfAbsent('debounce:x', 'third', 60_000)).toBe(false)
      await sleep(450)
      expect(await backend.getValue('debounce:x')).toBeUndefined()
      await backend.putValue('fresh', 'v', 60_000)
      expect(await backend.getValue('fresh')).toBe('v')
    })

    it('cleanup deletes expired rate starts and slots of keys nobody asks about again', async () => {
      for (let i = 0; i < 5; i++) await backend.takeRate('abandoned-rate', 10, 50)
      await backend.acquireSlot('abandoned-slot', 'crashed', 1, 50)
      await backend.acquireSlot('kept-slot', 'alive', 1, 60_000)
      await sleep(80)
      const swept = await backend.cleanup()
      expect(swept.rates).toBeGreaterThanOrEqual(5)
      expect(swept.slots).toBeGreaterThanOrEqual(1)
      const db = new Database(pathOf(url), { readonly: true })
      try {
        expect(
          db.prepare(`SELECT count(*) FROM errand_rate WHERE key = 'abandoned-rate'`).pluck().get(),
        ).toBe(0)
        expect(db.prepare(`SELECT key FROM errand_slots`).pluck().all()).toContain('kept-slot')
        expect(db.prepare(`SELECT key FROM errand_slots`).pluck().all()).not.toContain('abandoned-slot')
      } finally {
        db.close()
      }
    })

    it('takeRate deletes its key’s starts that left the window', async () => {
      for (let i = 0; i < 3; i++) expect(await backend.takeRate('rolling', 3, 50)).toBe(0)
      await sleep(70)
      expect(await backend.takeRate('rolling', 3, 50)).toBe(0)
      const db = new Database(pathOf(url), { readonly: true })
      try {
        expect(db.prepare(`SELECT count(*) FROM errand_rate WHERE key = 'rolling'`).pluck().get()).toBe(1)
      } finally {
        db.close()
      }
    })

    it('rejects bad arguments naming them', async () => {
      const long = 'k'.repeat(MAX_FLOW_KEY_LENGTH + 1)
      await expect(backend.takeRate('', 1, 1000)).rejects.toThrow(/takeRate: key/)
      await expect(backend.takeRate(long, 1, 1000)).rejects.toThrow(/takeRate: key/)
      await expect(backend.takeRate('k', 0, 1000)).rejects.toThrow(/takeRate: max/)
      await expect(backend.takeRate('k', 1.5, 1000)).rejects.toThrow(/takeRate: max/)
      await expect(backend.takeRate('k', 1, 0)).rejects.toThrow(/takeRate: perMs/)
      await expect(backend.takeRate('k', 1, Number.NaN)).rejects.toThrow(/takeRate: perMs/)
      await expect(backend.acquireSlot('k', '', 1, 1000)).rejects.toThrow(/acquireSlot: holder/)
      await expect(backend.acquireSlot('k', 'h', -1, 1000)).rejects.toThrow(/acquireSlot: max/)
      await expect(backend.acquireSlot('k', 'h', 1, Number.POSITIVE_INFINITY)).rejects.toThrow(
        /acquireSlot: leaseMs/,
      )
      await expect(backend.releaseSlot(3 as unknown as string, 'h')).rejects.toThrow(/releaseSlot: key/)
      await expect(backend.setPaused('', true)).rejects.toThrow(/setPaused: queue/)
      await expect(backend.setPaused('q', 'yes' as unknown as boolean)).rejects.toThrow(/setPaused: paused/)
      await expect(backend.putValue('k', 1 as unknown as string, 1000)).rejects.toThrow(/putValue: value/)
      await expect(backend.putValue('k', 'v', -5)).rejects.toThrow(/putValue: ttlMs/)
      await expect(backend.takeRate('k', 1, 1000)).resolves.toBe(0)
      expect(await backend.acquireSlot('k'.repeat(MAX_FLOW_KEY_LENGTH), 'h', 1, 1000)).toBe(true)
    })
  })

  it('ERR_CLOSED after close, for every method', async () => {
    const backend = new SqliteResultBackend({ url: fileUrl(tmp.dir) })
    await backend.connect()
    await backend.close()
    const calls: [string, () => Promise<unknown>][] = [
      ['takeRate', () => backend.takeRate('k', 1, 1000)],
      ['acquireSlot', () => backend.acquireSlot('k', 'h', 1, 1000)],
      ['releaseSlot', () => backend.releaseSlot('k', 'h')],
      ['setPaused', () => backend.setPaused('q', true)],
      ['pausedQueues', () => backend.pausedQueues()],
      ['putValue', () => backend.putValue('k', 'v', 1000)],
    ]
    for (const [name, call] of calls) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err, name).toBeInstanceOf(ClosedError)
      expect((err as ClosedError).code, name).toBe('ERR_CLOSED')
      expect((err as Error).message, name).toContain(name)
    }
  })

  it('a file at schema version 2 gains the flow tables, its rows untouched', async () => {
    const url = fileUrl(tmp.dir)
    const old = new Database(pathOf(url))
    old.pragma('journal_mode = WAL')
    old.exec(MIGRATIONS[0] as string)
    old.exec(MIGRATIONS[1] as string)
    old.pragma('user_version = 2')
    old
      .prepare(`INSERT INTO errand_kv (key, value, expires_at) VALUES ('old', 'kept', ?)`)
      .run(Date.now() + 60_000)
    old.close()
    const backend = new SqliteResultBackend({ url })
    try {
      expect(await backend.getValue('old')).toBe('kept')
      await backend.setPaused('q', true)
      expect(await backend.pausedQueues()).toEqual(['q'])
      const check = new Database(pathOf(url), { readonly: true })
      expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION)
      check.close()
    } finally {
      await backend.close()
    }
  })
})
