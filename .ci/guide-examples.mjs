// Type-check the TypeScript code blocks of docs/guide.md against the current sources.
//
//   node .ci/guide-examples.mjs
//
// The guide's ```ts blocks are written to follow on from each other (a later block uses tasks
// an earlier one defined), so they are joined in order into one module and type-checked with the
// project's strict settings, resolving @errand/* to their sources. Exits 1 with tsc's errors, each
// mapped back to its line in docs/guide.md.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const guide = readFileSync(join(root, 'docs/guide.md'), 'utf8').split('\n')

// Join the blocks; remember which guide line each generated line came from.
const out = []
const origin = []
let inBlock = false
guide.forEach((line, i) => {
  if (!inBlock && line.trim() === '```ts') {
    inBlock = true
    return
  }
  if (inBlock && line.trim() === '```') {
    inBlock = false
    return
  }
  if (inBlock) {
    out.push(line)
    origin.push(i + 1)
  }
})
out.push('export {}')
origin.push(0)

const dir = join(root, 'node_modules/.cache/errand-guide-examples')
rmSync(dir, { recursive: true, force: true })
mkdirSync(dir, { recursive: true })
writeFileSync(join(dir, 'guide.ts'), `${out.join('\n')}\n`)
const pkg = (p) => join(root, 'packages', p)
writeFileSync(
  join(dir, 'tsconfig.json'),
  JSON.stringify({
    extends: join(root, 'tsconfig.base.json'),
    compilerOptions: {
      noEmit: true,
      composite: false,
      declaration: false,
      declarationMap: false,
      customConditions: ['source'],
      noUnusedLocals: false,
      types: ['node'],
      typeRoots: [join(root, 'node_modules/@types')],
      paths: {
        '@errand/*': [join(root, 'packages/*/src/index.ts')],
        // The very files the packages' own imports resolve to, so the types are the same ones.
        zod: [join(realpathSync(join(pkg('core'), 'node_modules/zod')), 'index.d.cts')],
        pg: [join(realpathSync(join(pkg('postgres'), 'node_modules/@types/pg')), 'index.d.mts')],
        vitest: [join(root, 'node_modules/vitest')],
      },
    },
    files: ['guide.ts'],
  }),
)
try {
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], {
    encoding: 'utf8',
    stdio: 'pipe',
  })
  console.log(`docs/guide.md: ${out.length - 1} lines of TypeScript type-check`)
} catch (err) {
  const text = String(err.stdout ?? '') + String(err.stderr ?? '')
  console.log(
    text.replace(
      /guide\.ts\((\d+),(\d+)\)/g,
      (_, l, c) => `docs/guide.md(${origin[Number(l) - 1] ?? '?'},${c})`,
    ),
  )
  process.exit(1)
}
