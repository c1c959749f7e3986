// Writes wire-schema.json: the envelope's JSON Schema, for producers and workers in other languages.
import { writeFileSync } from 'node:fs'
import { envelopeJsonSchema } from '../src/envelope.js'

writeFileSync(
  new URL('../wire-schema.json', import.meta.url),
  `${JSON.stringify(envelopeJsonSchema(), null, 2)}\n`,
)
