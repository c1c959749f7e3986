import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)

/** The installed version of a dependency of @errand/bench (read from its package.json). */
export function pkgVersion(name: string): string {
  try {
    // Resolve the entry point, then walk up to the package's own package.json.
    let dir = dirname(require.resolve(name))
    for (let i = 0; i < 6; i++) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
          name?: string
          version?: string
        }
        if (pkg.name === name && pkg.version) return pkg.version
      } catch {}
      dir = dirname(dir)
    }
  } catch {}
  return '?'
}
