/**
 * `pnpm chaos -- --store redis --tasks 10000` (from the repository root), or
 * `pnpm --filter @errand/chaos chaos -- --store all --variant short`.
 *
 * Runs the chaos suite on each store named, prints its report and writes it as JSON to
 * `packages/chaos/results/<store>.json` (`<store>-short.json` for the short variant), with the
 * workers' stderr beside it (`.log`). Exits 1 when any assertion failed.
 */
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { chaosDefaults } from './chaos-options.js'
import { formatReport, writeReport } from './report.js'
import { runChaos } from './runner.js'
import { type StoreName, storeNames } from './stores/rig.js'

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    store: { type: 'string', default: 'all' },
    variant: { type: 'string', default: 'full' },
    tasks: { type: 'string' },
  },
})
const variant = values.variant === 'short' ? 'short' : 'full'
const stores: StoreName[] =
  values.store === 'all' ? [...storeNames] : (values.store ?? '').split(',').map((s) => s.trim() as StoreName)
for (const s of stores)
  if (!storeNames.includes(s)) throw new Error(`unknown store ${s}; known: ${storeNames.join(', ')}`)

const resultsDir = fileURLToPath(new URL('../results/', import.meta.url))
let failed = false
for (const store of stores) {
  const base = chaosDefaults(store, variant)
  const reportPath = `${resultsDir}${store}${variant === 'short' ? '-short' : ''}.json`
  const report = await runChaos({
    ...base,
    ...(values.tasks !== undefined && { tasks: Number(values.tasks) }),
    reportPath,
    log: (line) => console.log(line),
  })
  writeReport(reportPath, report)
  console.log(formatReport(report))
  console.log(`report: ${reportPath}`)
  if (!report.passed) failed = true
}
process.exit(failed ? 1 : 0)
