// Run under the Node that a test pass will use: lists the workspace packages whose native addons
// (directly, or through another workspace package they depend on) cannot load on this Node,
// as JSON `[{ dir, reason }]` on stdout.
//
// pnpm builds a native addon (e.g. better-sqlite3) once, for the Node that ran `pnpm install`.
// Another Node major has another ABI (NODE_MODULE_VERSION: 115 on Node 20, 137 on Node 24), so
// the same `.node` file fails to load there. Rebuilding it for that Node needs that Node's headers,
// which node-gyp downloads from the Node.js release site; where that is unreachable, the package
// is left out of that pass with this reason instead of failing it.
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, relative, resolve, sep } from 'node:path'

const root = resolve(process.argv[2] ?? '.')
const require = createRequire(import.meta.url)

/** `.node` files under a package folder (not in nested node_modules or build intermediates). */
function addonFiles(dir, depth = 0, out = []) {
  if (depth > 4) return out
  let entries
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return out
  }
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) {
      if (e.name === 'node_modules' || e.name === 'obj.target' || e.name === 'obj' || e.name === 'deps')
        continue
      addonFiles(p, depth + 1, out)
    } else if (e.name.endsWith('.node')) out.push(p)
  }
  return out
}

/** Why an addon does not load on this Node (an ABI mismatch), or undefined. */
const verdicts = new Map()
function abiProblem(file) {
  if (verdicts.has(file)) return verdicts.get(file)
  let problem
  try {
    require(file)
  } catch (err) {
    // Only an ABI mismatch is this pass's business; anything else (a SQLite extension that is not
    // a Node addon, a missing system library) fails the same way on every Node.
    if (/NODE_MODULE_VERSION/.test(String(err?.message))) {
      const m = String(err.message).match(/NODE_MODULE_VERSION (\d+)[\s\S]*NODE_MODULE_VERSION (\d+)/)
      problem = m
        ? `built for NODE_MODULE_VERSION ${m[1]}, Node ${process.versions.node} needs ${m[2]}`
        : String(err.message).split('\n')[0]
    }
  }
  verdicts.set(file, problem)
  return problem
}

const packagesDir = join(root, 'packages')
const workspace = readdirSync(packagesDir).filter((d) => existsSync(join(packagesDir, d, 'package.json')))
const memo = new Map()

/** The reason a workspace package cannot run on this Node, or undefined. */
function packageProblem(pkgDir, seen = new Set()) {
  if (memo.has(pkgDir)) return memo.get(pkgDir)
  if (seen.has(pkgDir)) return undefined
  seen.add(pkgDir)
  const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
  const deps = { ...manifest.dependencies, ...manifest.devDependencies }
  let problem
  for (const dep of Object.keys(deps)) {
    const link = join(pkgDir, 'node_modules', dep)
    if (!existsSync(link)) continue
    const real = realpathSync(link)
    if (real.startsWith(packagesDir + sep)) {
      const inner = packageProblem(real, seen)
      if (inner) problem = `${relative(root, real)}: ${inner}`
    } else if (statSync(real).isDirectory()) {
      for (const file of addonFiles(real)) {
        const p = abiProblem(file)
        if (p)
          problem = `${dep} (${relative(real, file)}) ${p}; rebuilding it for this Node needs its headers (node-gyp downloads them), see docs/notes/node-versions.md`
      }
    }
    if (problem) break
  }
  memo.set(pkgDir, problem)
  return problem
}

const skipped = []
for (const d of workspace) {
  const reason = packageProblem(join(packagesDir, d))
  if (reason) skipped.push({ dir: `packages/${d}`, reason })
}
console.log(JSON.stringify(skipped))
