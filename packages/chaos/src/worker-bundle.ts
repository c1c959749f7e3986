import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import type { StoreName } from './stores/rig.js'

/** A worker script ready to run with plain `node`. */
export interface WorkerScript {
  /** `node` arguments that run it. */
  readonly args: readonly string[]
  remove(): void
}

// ESM output has no require/__dirname; some CommonJS dependencies (pg, the AWS SDK) use them.
const CJS_SHIMS = [
  "import { createRequire as __chaosRequire } from 'node:module'",
  "import { fileURLToPath as __chaosPath } from 'node:url'",
  'const require = __chaosRequire(import.meta.url)',
  'const __filename = __chaosPath(import.meta.url)',
  "const __dirname = __filename.replace(/[\\\\/][^\\\\/]*$/, '')",
].join('\n')

/**
 * Bundle the worker entry of `store` (TypeScript sources with the `source` condition, as vitest
 * runs them) into one file in the temp folder. Why not `node --import tsx` per child: a worker is
 * killed and restarted about every second on two shared cores, and a child under tsx spends about
 * 1 s of CPU before it consumes (transpiling and resolving a few hundred files) against about
 * 0.2 s for the bundle; under load the tsx children often were all still starting.
 */
export async function buildWorkerScript(store: StoreName): Promise<WorkerScript> {
  const entry = fileURLToPath(new URL(`./worker-entries/${store}.ts`, import.meta.url))
  const outfile = join(tmpdir(), `chaos-worker-${store}-${randomBytes(4).toString('hex')}.mjs`)
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['source'],
    // pg loads pg-native only when asked to; it is not installed.
    external: ['pg-native'],
    banner: { js: CJS_SHIMS },
    logLevel: 'error',
  })
  return { args: [outfile], remove: () => rmSync(outfile, { force: true }) }
}
