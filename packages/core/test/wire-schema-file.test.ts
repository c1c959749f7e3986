import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { envelopeJsonSchema } from '../src/index.js'

describe('wire-schema.json', () => {
  it('matches the zod envelope schema (regenerate: pnpm --filter @errand/core wire-schema)', () => {
    const file = JSON.parse(readFileSync(new URL('../wire-schema.json', import.meta.url), 'utf8'))
    expect(file).toEqual(envelopeJsonSchema())
  })
})
