import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { SCHEMA_VERSION, SqliteBroker } from '../src/index.js'
import { fileUrl, tempDir, uniqueQueue } from './helpers.js'
import { spawnChild } from './processes.js'

const tmp = tempDir('migrate')
afterAll(() => tmp.remove())

describe('sqlite: two processes open a fresh file at once', () => {
  it('both work, and the schema is created once, at the current version', async () => {
    for (let round = 0; round < 2; round++) {
      const url = fileUrl(tmp.dir)
      const queue = uniqueQueue('migrate')
      const children = [0, 1].map(() => spawnChild('migrate', { DB_URL: url, QUEUE: queue }))
      // Both are loaded and waiting before either touches the file.
      await Promise.all(children.map((c) => c.next((m) => m.waiting === true, 180_000)))
      for (const c of children) c.process.send('go')
      const answers = await Promise.all(children.map((c) => c.next((m) => 'ok' in m)))
      expect(answers, JSON.stringify(answers)).toEqual([{ ok: true }, { ok: true }])
      expect(await Promise.all(children.map((c) => c.exited))).toEqual([0, 0])
      const db = new Database(url.slice('sqlite://'.length), { readonly: true })
      try {
        expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION)
        expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
        const tables = db
          .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'errand%' ORDER BY name",
          )
          .pluck()
          .all()
        expect(tables).toEqual([
          'errand_dead_letters',
          'errand_events',
          'errand_group_members',
          'errand_groups',
          'errand_jobs',
          'errand_kv',
          'errand_paused',
          'errand_rate',
          'errand_results',
          'errand_slots',
        ])
        expect(db.prepare('SELECT count(*) FROM errand_results').pluck().get()).toBe(2)
      } finally {
        db.close()
      }
      const broker = new SqliteBroker({ url })
      await broker.connect()
      expect((await broker.stats(queue)).ready).toBe(2)
      await broker.close()
    }
  }, 600_000)
})
