import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseSqliteUrl, SqliteBroker, SqliteResultBackend } from '../src/index.js'

describe('sqlite URLs and options', () => {
  it('maps URLs to paths: absolute, relative to the working directory, in memory', () => {
    expect(parseSqliteUrl('sqlite:///var/lib/app/errand.db')).toBe('/var/lib/app/errand.db')
    expect(parseSqliteUrl('sqlite://./errand.db', '/srv/app')).toBe('/srv/app/errand.db')
    expect(parseSqliteUrl('sqlite://errand.db', '/srv/app')).toBe('/srv/app/errand.db')
    expect(parseSqliteUrl('sqlite://data/q.db', '/srv/app')).toBe('/srv/app/data/q.db')
    expect(parseSqliteUrl('sqlite://../q.db', '/srv/app')).toBe('/srv/q.db')
    expect(parseSqliteUrl('sqlite:///tmp/with%20space.db')).toBe('/tmp/with space.db')
    expect(parseSqliteUrl('sqlite::memory:')).toBe(':memory:')
    expect(parseSqliteUrl('sqlite://:memory:')).toBe(':memory:')
    expect(parseSqliteUrl('sqlite::memory:?durability=full')).toBe(':memory:')
    expect(parseSqliteUrl('sqlite:///tmp/q.db?busyTimeoutMs=10')).toBe('/tmp/q.db')
    expect(new SqliteBroker({ url: 'sqlite://./x.db' }).path).toBe(resolve('x.db'))
    expect(new SqliteResultBackend({ url: `sqlite://${join('/tmp', 'y.db')}` }).path).toBe('/tmp/y.db')
  })

  it('reads scalar options from the URL query (core optionsFromQuery); the constructor wins', () => {
    const url = 'sqlite::memory:?maxMessageBytes=1000&durability=full&pollIntervalMs=50'
    expect(new SqliteBroker({ url }).capabilities.maxMessageBytes).toBe(1000)
    expect(new SqliteBroker({ url, maxMessageBytes: 2000 }).capabilities.maxMessageBytes).toBe(2000)
    expect(() => new SqliteResultBackend({ url: 'sqlite::memory:?eventRetention=5' })).not.toThrow()
    expect(() => new SqliteResultBackend({ url: 'sqlite::memory:?leaseMs=5' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'leaseMs' }),
    )
  })

  it('refuses other URLs and unknown or malformed options with ERR_INVALID_OPTION naming them', () => {
    for (const url of [
      'sqlite:',
      'sqlite://',
      'sqlite:x.db',
      'sqlite:///a.db#frag',
      'postgres://h/db',
      'sqlite:///%zz',
    ]) {
      expect(() => new SqliteBroker({ url }), url).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'url' }),
      )
    }
    expect(() => new SqliteBroker({ url: 'sqlite::memory:', leaseMS: 5 } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'leaseMS' }),
    )
    expect(() => new SqliteBroker({ url: 'sqlite::memory:', durability: 'sometimes' } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'durability' }),
    )
    expect(() => new SqliteResultBackend({ url: 'sqlite::memory:', pollIntervalMs: 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'pollIntervalMs' }),
    )
    for (const [url, option] of [
      ['sqlite:///a.db?mode=ro', 'mode'],
      ['sqlite:///a.db?logger=x', 'logger'],
      ['sqlite:///a.db?busyTimeoutMs=soon', 'busyTimeoutMs'],
      ['sqlite:///a.db?durability=sometimes', 'durability'],
      ['sqlite::memory:?leaseMs=0', 'leaseMs'],
    ] as const) {
      expect(() => new SqliteBroker({ url }), url).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_OPTION', option }),
      )
    }
    expect(() => new SqliteResultBackend({} as never)).toThrow(expect.objectContaining({ option: 'url' }))
    for (const eventRetention of [0, 1.5, 1_000_001]) {
      expect(
        () => new SqliteResultBackend({ url: 'sqlite::memory:', eventRetention }),
        `${eventRetention}`,
      ).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'eventRetention' }))
    }
  })
})
