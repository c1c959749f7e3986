import { defineTask } from '@errand/core'
import { z } from 'zod'

const image = z.object({ url: z.string().url(), width: z.number().int(), bytes: z.number().int() })

/** Step 1 of the image pipeline: "download" an image. */
export const fetchImage = defineTask({
  name: 'images.fetch',
  input: z.object({ url: z.string().url() }),
  output: image,
  handler: ({ url }) => ({ url, width: 4000, bytes: 1_200_000 }),
})

/** Step 2: resize it (halves the bytes per halving of the width). */
export const resize = defineTask({
  name: 'images.resize',
  input: image,
  output: image,
  handler: (img) => ({ ...img, width: 800, bytes: Math.round(img.bytes * (800 / img.width)) }),
})

/** Step 3: "upload" it; the output is the public URL. */
export const upload = defineTask({
  name: 'images.upload',
  input: image,
  output: z.string(),
  handler: (img) => `${img.url.replace('https://origin.', 'https://cdn.')}?w=${img.width}`,
})

/** Fan-out member: count the words of one document. */
export const countWords = defineTask({
  name: 'docs.count-words',
  input: z.object({ text: z.string() }),
  output: z.number().int(),
  handler: ({ text }) => text.split(/\s+/).filter(Boolean).length,
})

/** Fan-in: add the counts up. */
export const total = defineTask({
  name: 'docs.total',
  input: z.array(z.number().int()),
  output: z.object({ documents: z.number(), words: z.number() }),
  handler: (counts) => ({ documents: counts.length, words: counts.reduce((a, b) => a + b, 0) }),
})

/** A periodic job. */
export const heartbeat = defineTask({
  name: 'ops.heartbeat',
  input: z.object({ service: z.string() }),
  handler: ({ service }) => {
    console.log(`  heartbeat from ${service} at ${new Date().toISOString()}`)
  },
})
