// Print "N passed, N failed, N skipped" summed over one or more vitest JSON reports (one per test
// pass, e.g. Node 20 and Node 24); exit 1 on any failure or when nothing passed.
//
//   node .ci/summary.mjs <report>[=<label>] ...
//
// Beside each report two optional files are read:
// - `<report>.unhandled.json` (written by vitest.config.ts): unhandled errors, which vitest fails
//   the run on but its JSON report does not count; each counts here as a failure, named.
// - `<report>.skipped.json` (written by .ci/node24.sh): `[{ dir, reason }]`, packages a pass left
//   out on purpose (a native addon that cannot load on that Node). Their tests, counted from the
//   other reports, count as skipped in this pass, and the reason is printed.
import { readFileSync } from 'node:fs'

const args = process.argv.slice(2)
if (args.length === 0) {
  console.error('usage: node .ci/summary.mjs <report>[=<label>] ...')
  process.exit(2)
}

function readJson(file, fallback) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'))
  } catch {
    return fallback
  }
}

const passes = args.map((arg) => {
  const eq = arg.lastIndexOf('=')
  const file = eq > 0 ? arg.slice(0, eq) : arg
  const label = eq > 0 ? arg.slice(eq + 1) : file
  return { file, label, report: readJson(file, undefined) }
})

/** Tests per file path in a report. */
function testsByFile(report) {
  const files = new Map()
  for (const r of report?.testResults ?? []) files.set(r.name, (r.assertionResults ?? []).length)
  return files
}

const total = { passed: 0, failed: 0, skipped: 0 }
for (const pass of passes) {
  const { file, label, report } = pass
  if (report === undefined) {
    console.error(`${label}: no vitest JSON report at ${file}: counted as one failure`)
    total.failed += 1
    continue
  }
  const passed = report.numPassedTests ?? 0
  const failedTests = report.numFailedTests ?? 0
  const failedSuites = report.numFailedTestSuites ?? 0
  let skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0)
  const unhandled = readJson(`${file}.unhandled.json`, [])
  for (const e of unhandled) console.error(`${label}: unhandled error: ${e.name}: ${e.message}\n${e.stack}`)
  const skippedDirs = readJson(`${file}.skipped.json`, [])
  for (const { dir, reason } of skippedDirs) {
    // The largest count of that package's tests seen in any other pass.
    let count = 0
    for (const other of passes) {
      if (other === pass) continue
      let n = 0
      for (const [name, tests] of testsByFile(other.report)) if (name.includes(`/${dir}/`)) n += tests
      count = Math.max(count, n)
    }
    skipped += count
    console.error(`${label}: skipped ${dir} (${count} tests): ${reason}`)
  }
  // A file that fails to load has no failed test but a failed suite: count it as a failure.
  const failed = failedTests + (failedTests === 0 ? failedSuites : 0) + unhandled.length
  // Worded unlike the closing line, so only the total reads as one.
  if (passes.length > 1)
    console.error(`${label} pass: passed ${passed}, failed ${failed}, skipped ${skipped}`)
  // A pass that ran nothing counts as broken, unless it left packages out on purpose.
  pass.ok = passed > 0 || skippedDirs.length > 0
  if (!pass.ok) console.error(`${label}: no test passed`)
  total.passed += passed
  total.failed += failed
  total.skipped += skipped
}
console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`)
process.exit(total.failed > 0 || passes.some((p) => !p.ok) ? 1 : 0)
