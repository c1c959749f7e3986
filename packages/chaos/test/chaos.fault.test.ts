import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { chaosDefaults } from '../src/chaos-options.js'
import { formatReport, writeReport } from '../src/report.js'
import { runChaos } from '../src/runner.js'
import { type StoreName, storeNames } from '../src/stores/rig.js'

const resultsDir = fileURLToPath(new URL('../results/', import.meta.url))

/*
 * The short chaos variant (1,000 tasks, about a minute per store): three worker processes, one
 * SIGKILLed about every second, connections cut every few seconds, garbage written into the
 * queue. Every assertion is in verify.ts; a failing run lists them all, with evidence, and writes
 * its report to packages/chaos/results/<store>-short.json (workers' stderr in the .log beside it).
 */
describe('chaos (short variant)', () => {
  for (const store of storeNames as readonly StoreName[]) {
    it(`${store}: nothing lost, every handle settles, workers die only by the kills, garbage dead-lettered`, async () => {
      const options = chaosDefaults(store, 'short')
      const reportPath = `${resultsDir}${store}-short.json`
      const report = await runChaos({ ...options, reportPath })
      writeReport(reportPath, report)
      console.log(formatReport(report))
      expect(report.failures).toEqual([])
    }, 360_000)
  }
})
