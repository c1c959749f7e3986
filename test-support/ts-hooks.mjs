// Module hooks that let a plain `node` child process run this repository's TypeScript sources on
// Node 20, which has no type stripping: `node --conditions=source --import <this file> child.ts`
// (tests and scripts spawn children to watch process-level behaviour: when a process exits, what
// a SIGKILL leaves behind). The `source` export condition points workspace packages at src/*.ts. Types are stripped with `typescript`'s transpileModule (a dev
// dependency already); `./x.js` imports inside .ts files resolve to `./x.ts`, as TypeScript's
// NodeNext resolution does. Output is cached on disk by path, size and mtime: loading the
// compiler and transpiling core and the adapter costs seconds, paid once instead of per child.
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { register } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isMainThread } from 'node:worker_threads'

// Imported with --import on the main thread: register this same file as the hooks module (Node
// runs hooks on a thread of their own, where this branch is skipped).
if (isMainThread) register(import.meta.url)

const CACHE = join(tmpdir(), 'errand-ts-hooks-cache')
let compiler

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context)
  } catch (err) {
    const fromTs = context.parentURL?.endsWith('.ts') ?? false
    if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !fromTs || !specifier.endsWith('.js')) throw err
    return next(`${specifier.slice(0, -3)}.ts`, context)
  }
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context)
  const fileName = fileURLToPath(url)
  const { size, mtimeMs } = await stat(fileName)
  const key = createHash('sha256').update(`${fileName}\0${size}\0${mtimeMs}`).digest('hex')
  const cached = join(CACHE, `${key}.js`)
  const hit = await readFile(cached, 'utf8').catch(() => undefined)
  if (hit !== undefined) return { format: 'module', source: hit, shortCircuit: true }
  compiler ??= (await import('typescript')).default
  const { outputText } = compiler.transpileModule(await readFile(fileName, 'utf8'), {
    fileName,
    compilerOptions: {
      module: compiler.ModuleKind.ESNext,
      target: compiler.ScriptTarget.ES2022,
      verbatimModuleSyntax: true,
      sourceMap: false,
    },
  })
  await mkdir(CACHE, { recursive: true })
  // Written under a unique name and renamed, so a concurrent child never reads half a file.
  const partial = `${cached}.${process.pid}.tmp`
  await writeFile(partial, outputText)
  await rename(partial, cached)
  return { format: 'module', source: outputText, shortCircuit: true }
}
