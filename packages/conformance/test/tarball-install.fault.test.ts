import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

// In the fault project (one file at a time, after the rest) because it builds, packs and runs npm,
// which would slow every timing-sensitive neighbour. The work is in .ci/tarball-check.mjs, run by
// the Node of this pass, so the Node 24 pass checks the tarballs on Node 24 as well.
const root = fileURLToPath(new URL('../../../', import.meta.url))

it('the packed packages install with npm outside the workspace and run a quickstart and the memory conformance suites', () => {
  const run = spawnSync(process.execPath, ['.ci/tarball-check.mjs'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ERRAND_TEST_REPORT: '' },
    maxBuffer: 64 * 1024 * 1024,
  })
  const output = `${run.stdout}\n${run.stderr}`
  if (run.status !== 0) console.error(output)
  expect(run.status, output.slice(-4000)).toBe(0)
}, 400_000)
