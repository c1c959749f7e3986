import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

// docs/guide.md is checked against the sources by two scripts under .ci/ (runnable by hand too).
const root = fileURLToPath(new URL('../../../', import.meta.url))
const script = (name: string, ...args: string[]) =>
  spawnSync(process.execPath, [`.ci/${name}`, ...args], { cwd: root, encoding: 'utf8' })

it('docs/guide.md mentions every export of @errand/core by name', () => {
  const run = script('guide-exports.mjs', 'core')
  // On failure the output lists the missing names, one a line.
  expect(run.stdout + run.stderr).toMatch(/^docs\/guide\.md mentions all \d+ exports of packages\/core$/m)
  expect(run.status).toBe(0)
})

it("docs/guide.md's TypeScript examples type-check against the current API", () => {
  const run = script('guide-examples.mjs')
  // On failure the output is tsc's, with positions in docs/guide.md.
  expect(run.stdout + run.stderr).toMatch(/^docs\/guide\.md: \d+ lines of TypeScript type-check$/m)
  expect(run.status).toBe(0)
}, 180_000)
