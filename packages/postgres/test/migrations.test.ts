import { afterAll, describe, expect, it } from 'vitest'
import { PostgresBroker, PostgresResultBackend, SCHEMA_VERSION } from '../src/index.js'
import { dropSchema, schemaUrl, sql, uniqueSchema } from './helpers.js'

const schemas: string[] = []
function fresh(): string {
  const s = uniqueSchema('mig')
  schemas.push(s)
  return s
}
afterAll(async () => {
  for (const s of schemas) await dropSchema(s)
})

describe('migrations', () => {
  it('five brokers and backends connecting at once to a fresh schema migrate it exactly once', async () => {
    const schema = fresh()
    const instances = [
      ...Array.from({ length: 5 }, () => new PostgresBroker({ url: schemaUrl(schema) })),
      ...Array.from({ length: 2 }, () => new PostgresResultBackend({ url: schemaUrl(schema) })),
    ]
    try {
      await Promise.all(instances.map((i) => i.connect()))
      const rows = await sql<{ version: number }>(
        `SELECT version FROM "${schema}".migrations ORDER BY version`,
      )
      expect(rows.map((r) => r.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1))
      // Each works on the migrated schema.
      await (instances[0] as PostgresBroker).publish('q', [{ body: new Uint8Array([1]) }])
      expect((await (instances[4] as PostgresBroker).stats('q')).ready).toBe(1)
    } finally {
      await Promise.all(instances.map((i) => i.close()))
    }
  })

  it('migrate() is idempotent and applies nothing twice', async () => {
    const schema = fresh()
    const broker = new PostgresBroker({ url: schemaUrl(schema), migrate: false })
    try {
      expect(await broker.migrate()).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1))
      expect(await broker.migrate()).toEqual([])
      await broker.connect()
      expect(await broker.migrate()).toEqual([])
    } finally {
      await broker.close()
    }
  })

  it('migrate: false leaves a fresh schema alone', async () => {
    const schema = fresh()
    const broker = new PostgresBroker({ url: schemaUrl(schema), migrate: false })
    try {
      await broker.connect()
      const ns = await sql(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [schema])
      expect(ns).toHaveLength(0)
      await expect(broker.stats('q')).rejects.toThrow(/does not exist/)
    } finally {
      await broker.close()
    }
  })

  it('needs no CREATE privilege on the database when the schema exists, nor superuser', async () => {
    const schema = fresh()
    const role = `${schema}_app`
    await sql(`CREATE ROLE "${role}" LOGIN`)
    try {
      await sql(`CREATE SCHEMA "${schema}" AUTHORIZATION "${role}"`)
      await sql(`REVOKE CREATE ON DATABASE test FROM "${role}"`)
      const url = new URL(schemaUrl(schema))
      url.username = role
      const broker = new PostgresBroker({ url: url.toString() })
      try {
        await broker.connect()
        await broker.publish('q', [{ body: new Uint8Array([1]) }])
        expect((await broker.stats('q')).ready).toBe(1)
      } finally {
        await broker.close()
      }
    } finally {
      await dropSchema(schema)
      await sql(`DROP ROLE "${role}"`)
    }
  })
})
