import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const REPO = fileURLToPath(new URL('../../..', import.meta.url))

/**
 * Which sources a run used: the commit, and the packages with uncommitted changes (several
 * engineers share the checkout, and the workers are bundled from the working tree as it is).
 */
export function sourceVersion(): string {
  try {
    const run = (...args: string[]) => execFileSync('git', args, { cwd: REPO, encoding: 'utf8' }).trim()
    const commit = run('rev-parse', '--short', 'HEAD')
    const dirty = new Set(
      run('status', '--porcelain', '--', 'packages')
        .split('\n')
        .map((l) => /packages\/([^/]+)\//.exec(l)?.[1])
        .filter((p): p is string => p !== undefined),
    )
    return dirty.size === 0 ? commit : `${commit} + uncommitted changes in ${[...dirty].sort().join(', ')}`
  } catch {
    return 'unknown (not a git checkout)'
  }
}
