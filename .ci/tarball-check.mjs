// Do the published packages work outside this repository?
//
//   node .ci/tarball-check.mjs [--keep] [--packages=core,conformance,redis] [--vitest=3.2.4]
//
// Builds every publishable package (packages/* without "private"), packs each with `pnpm pack`,
// checks the packed manifests (no `workspace:` left, engines, license, types, every exported file
// present in the tarball), installs the tarballs with npm into a fresh project in the system's
// temp folder (zod, vitest, typescript and the clients come from the npm registry), then there:
// type-checks and runs a quickstart on the memory store, imports every adapter package, and runs
// the memory store through runBrokerConformance, runResultBackendConformance and
// runAppConformance with vitest installed in that project. Exits non-zero on the first failure.
//
// zod is installed at the lowest version the packages' range allows, so the range's floor is
// what gets tested. Install scripts are skipped (`--ignore-scripts`): better-sqlite3 would compile
// for minutes, and importing @errand/sqlite does not load the addon.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const keep = process.argv.includes('--keep')
// `--packages=core,conformance,redis` checks only those (core and conformance are always needed).
const only = process.argv
  .find((a) => a.startsWith('--packages='))
  ?.slice('--packages='.length)
  .split(',')
const started = Date.now()
// `--vitest=3.2.4` runs the suites on another vitest in conformance's peer range.
const VITEST = process.argv.find((a) => a.startsWith('--vitest='))?.slice('--vitest='.length) ?? '4.1.12'
const TYPESCRIPT = '5.9.3'
const TYPES_NODE = '20.19.43'

function step(msg) {
  console.log(`[tarball-check ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`)
}
function run(cmd, args, cwd, extraEnv = {}) {
  try {
    return execFileSync(cmd, args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...extraEnv },
      maxBuffer: 64 * 1024 * 1024,
    })
  } catch (err) {
    console.error(
      `command failed in ${cwd}: ${cmd} ${args.join(' ')}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`,
    )
    throw new Error(`${cmd} ${args[0]} failed`)
  }
}
function fail(msg) {
  console.error(`tarball-check: ${msg}`)
  process.exit(1)
}

// Written like a user would after reading the README: no workspace paths, only package names.
const QUICKSTART = `import { chain, createApp, defineTask, isErrandError } from '@errand/core'
import { z } from 'zod'

const add = defineTask({
  name: 'outside.add',
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.number(),
  handler: ({ a, b }) => a + b,
})
const double = defineTask({
  name: 'outside.double',
  input: z.number(),
  output: z.number(),
  handler: (n) => n * 2,
})

const app = createApp({ broker: 'memory://', backend: 'memory://', tasks: [add, double] })
const worker = await app.worker({ concurrency: 4 }).start()
const sum = await app.send(add.s({ a: 2, b: 3 }))
console.log('add(2, 3) =', await sum.get({ timeoutMs: 10_000 }))
const both = await app.send(chain(add.s({ a: 1, b: 5 }), double.s()))
console.log('chain:', await both.get({ timeoutMs: 10_000 }))
try {
  // @ts-expect-error -- a string where a number belongs
  await app.send(add.s({ a: 'two', b: 3 }))
} catch (err) {
  if (!isErrandError(err, 'ERR_VALIDATION')) throw err
  console.log('refused:', err.code)
}
await worker.stop()
await app.close()
`

const CONFORMANCE = `import { MemoryBroker, MemoryResultBackend } from '@errand/core'
import { runAppConformance, runBrokerConformance, runResultBackendConformance } from '@errand/conformance'

runBrokerConformance({ name: 'memory', factory: () => new MemoryBroker({ name: 'outside' }), stressMessages: 2000 })
runResultBackendConformance({ name: 'memory', factory: () => new MemoryResultBackend({ name: 'outside' }) })
runAppConformance({
  name: 'memory',
  broker: () => new MemoryBroker({ name: 'outside-app' }),
  backend: () => new MemoryResultBackend({ name: 'outside-app' }),
})
`

// Which packages are published.
const packages = readdirSync(join(root, 'packages'))
  .filter((d) => existsSync(join(root, 'packages', d, 'package.json')))
  .map((d) => ({
    dir: join(root, 'packages', d),
    manifest: JSON.parse(readFileSync(join(root, 'packages', d, 'package.json'), 'utf8')),
  }))
  .filter((p) => !p.manifest.private)
  .filter((p) => only === undefined || only.includes(p.manifest.name.replace(/^@errand\//, '')))
const names = packages.map((p) => p.manifest.name)
if (!names.includes('@errand/core') || !names.includes('@errand/conformance'))
  fail(`expected core and conformance among ${names}`)

const work = mkdtempSync(join(tmpdir(), 'errand-tarballs-'))
const tarballs = join(work, 'tarballs')
const app = join(work, 'app')
mkdirSync(tarballs)
mkdirSync(app)
let ok = false
try {
  step(`build (tsc -b) ${names.join(', ')}`)
  run(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-b', ...packages.map((p) => p.dir)],
    root,
  )

  step('pack')
  const packed = []
  for (const p of packages) {
    const before = new Set(readdirSync(tarballs))
    run('pnpm', ['pack', '--pack-destination', tarballs], p.dir)
    const file = readdirSync(tarballs).find((f) => !before.has(f))
    if (!file) fail(`pnpm pack wrote no tarball for ${p.manifest.name}`)
    packed.push({ ...p, tarball: join(tarballs, file) })
  }

  step('check packed manifests')
  const problems = []
  for (const p of packed) {
    const listing = run('tar', ['-tzf', p.tarball], work).split('\n').filter(Boolean)
    const m = JSON.parse(run('tar', ['-xzOf', p.tarball, 'package/package.json'], work))
    const where = m.name
    const text = JSON.stringify(m)
    if (text.includes('workspace:')) problems.push(`${where}: "workspace:" left in the packed manifest`)
    if (m.engines?.node !== '>=20.11') problems.push(`${where}: engines.node is ${m.engines?.node}`)
    if (!m.license) problems.push(`${where}: no license`)
    if (!m.description) problems.push(`${where}: no description`)
    if (m.type !== 'module') problems.push(`${where}: not "type": "module"`)
    const has = (rel) => listing.includes(`package/${rel.replace(/^\.\//, '')}`)
    for (const [sub, target] of Object.entries(m.exports ?? {})) {
      const conditions = typeof target === 'string' ? { default: target } : target
      const keys = Object.keys(conditions)
      if (typeof target !== 'string') {
        if (keys.at(-1) !== 'default')
          problems.push(`${where}: exports["${sub}"] does not end with "default"`)
        if ('types' in conditions && keys.indexOf('types') > keys.indexOf('default'))
          problems.push(`${where}: exports["${sub}"] has "types" after "default"`)
        if (sub === '.' && !('types' in conditions)) problems.push(`${where}: exports["."] has no "types"`)
      }
      for (const [cond, file] of Object.entries(conditions)) {
        if (!has(file)) problems.push(`${where}: exports["${sub}"].${cond} → ${file} is not in the tarball`)
      }
    }
    if (m.types && !has(m.types)) problems.push(`${where}: types → ${m.types} is not in the tarball`)
    const bins = typeof m.bin === 'string' ? { [m.name]: m.bin } : (m.bin ?? {})
    for (const [cmd, file] of Object.entries(bins)) {
      if (!has(file)) problems.push(`${where}: bin ${cmd} → ${file} is not in the tarball`)
    }
    const junk = listing.filter((f) => /\.tsbuildinfo$|\/test\/|NOTES-FOR-LEAD|\.test\.ts$/.test(f))
    if (junk.length > 0) problems.push(`${where}: packs files users need not have: ${junk.join(', ')}`)
    for (const field of ['dependencies', 'peerDependencies']) {
      for (const [dep, range] of Object.entries(m[field] ?? {})) {
        if (dep.startsWith('@errand/') && !range.startsWith('^'))
          problems.push(`${where}: ${field}.${dep} is "${range}"`)
      }
    }
    if (m.name === '@errand/conformance' && m.peerDependencies?.vitest !== '>=3.2 <5')
      problems.push(`${where}: peer vitest is ${m.peerDependencies?.vitest}`)
  }
  if (problems.length > 0) fail(`packed manifests:\n  ${problems.join('\n  ')}`)

  // The lowest zod every package accepts (they share one range), so the floor is what runs.
  const zodRanges = new Set(packed.map((p) => p.manifest.dependencies?.zod).filter(Boolean))
  if (zodRanges.size !== 1) fail(`packages disagree on zod: ${[...zodRanges].join(', ')}`)
  const zodFloor = [...zodRanges][0].replace(/^[\^~]/, '')

  step(`npm install (zod ${zodFloor}, vitest ${VITEST}, typescript ${TYPESCRIPT}) in ${app}`)
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'errand-outside', private: true, type: 'module' }, null, 2)}\n`,
  )
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
      '--loglevel=error',
      ...packed.map((p) => p.tarball),
      `zod@${zodFloor}`,
      `vitest@${VITEST}`,
      `typescript@${TYPESCRIPT}`,
      `@types/node@${TYPES_NODE}`,
    ],
    app,
  )
  const installed = (name) =>
    JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8'))
  if (installed('zod').version !== zodFloor)
    fail(`zod ${installed('zod').version} installed, expected ${zodFloor}`)
  for (const p of packed) {
    const nested = join(app, 'node_modules', p.manifest.name, 'node_modules', '@errand', 'core')
    if (existsSync(nested))
      fail(`${p.manifest.name} got its own copy of @errand/core (the range does not dedupe)`)
  }

  step('type-check and run the quickstart')
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        // Our .d.ts files come from tsc; checking every library's (the AWS SDK's above all) would
        // triple this step's time.
        skipLibCheck: true,
        types: ['node'],
        outDir: 'out',
      },
      include: ['quickstart.ts', 'imports.ts'],
    }),
  )
  writeFileSync(join(app, 'quickstart.ts'), QUICKSTART)
  const adapters = packed
    .map((p) => p.manifest.name)
    .filter((n) => n !== '@errand/core' && n !== '@errand/conformance')
  writeFileSync(
    join(app, 'imports.ts'),
    `${adapters.map((n, i) => `import * as a${i} from '${n}'`).join('\n')}\nexport const adapters = { ${adapters.map((n, i) => `'${n}': a${i}`).join(', ')} }\n`,
  )
  run(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', '.'], app)
  const out = run(process.execPath, ['out/quickstart.js'], app)
  if (
    !out.includes('add(2, 3) = 5') ||
    !out.includes('chain: 12') ||
    !out.includes('refused: ERR_VALIDATION')
  )
    fail(`the quickstart printed:\n${out}`)
  process.stdout.write(`${out.trimEnd().replace(/^/gm, '  | ')}\n`)
  const exportsOf = run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const m = await import('./out/imports.js'); for (const [n, mod] of Object.entries(m.adapters)) console.log(n, Object.keys(mod).length)`,
    ],
    app,
  )
  for (const n of adapters)
    if (!new RegExp(`^${n} [1-9]`, 'm').test(exportsOf)) fail(`${n} does not import: ${exportsOf}`)
  step(`imported ${adapters.join(', ')}`)

  step('memory conformance suites (vitest in the installed project)')
  writeFileSync(join(app, 'memory.test.ts'), CONFORMANCE)
  writeFileSync(
    join(app, 'vitest.config.mjs'),
    `export default { test: { testTimeout: 60000, hookTimeout: 60000 } }\n`,
  )
  const report = join(work, 'vitest.json')
  run(
    process.execPath,
    [
      join(app, 'node_modules/vitest/vitest.mjs'),
      'run',
      '--reporter=dot',
      '--reporter=json',
      `--outputFile.json=${report}`,
    ],
    app,
    {
      ERRAND_TEST_REPORT: '',
    },
  )
  const r = JSON.parse(readFileSync(report, 'utf8'))
  step(
    `conformance suites: passed ${r.numPassedTests}, failed ${r.numFailedTests}, skipped ${r.numPendingTests}`,
  )
  if (r.numFailedTests > 0 || r.numPassedTests < 50) fail('the memory conformance suites did not pass')
  ok = true
  step('ok')
} finally {
  if (keep || !ok) console.log(`[tarball-check] left ${work} for a look`)
  else rmSync(work, { recursive: true, force: true })
}
