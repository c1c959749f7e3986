// Print "N passed, N failed, N skipped" from vitest's JSON report; exit 1 on any failure.
import { readFileSync } from 'node:fs'

const file = process.argv[2]
let report
try {
  report = JSON.parse(readFileSync(file, 'utf8'))
} catch (err) {
  console.error(`no vitest JSON report at ${file}: ${err.message}`)
  console.log('0 passed, 1 failed')
  process.exit(1)
}
const passed = report.numPassedTests ?? 0
const failedTests = report.numFailedTests ?? 0
const failedSuites = report.numFailedTestSuites ?? 0
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0)
// Unhandled errors (written beside the report by vitest.config.ts): vitest fails the run on them
// but its JSON report does not count them, so each counts here as a failure, named.
let unhandled = []
try {
  unhandled = JSON.parse(readFileSync(`${file}.unhandled.json`, 'utf8'))
} catch {
  unhandled = []
}
for (const e of unhandled) console.error(`unhandled error: ${e.name}: ${e.message}\n${e.stack}`)
// A file that fails to load has no failed test but a failed suite: count it as a failure.
const failed = failedTests + (failedTests === 0 ? failedSuites : 0) + unhandled.length
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exit(failed > 0 || passed === 0 ? 1 : 0)
