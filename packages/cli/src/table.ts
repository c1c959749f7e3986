import Table from 'cli-table3'

/** A table as text, for terminals and logs alike (no colours: they would garble a log file). */
export function table(head: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const t = new Table({ head: [...head], style: { head: [], border: [] } })
  for (const row of rows) t.push(row.map((cell) => String(cell)))
  return t.toString()
}

/** A time (ms since epoch) as ISO text, or `-`. */
export function when(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString()
}
