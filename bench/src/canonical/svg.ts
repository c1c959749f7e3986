/** A small horizontal bar chart (median bar, min–max whisker) as an SVG string. */
export interface Bar {
  label: string
  /** Median; undefined = no valid run (drawn as a note). */
  value: number | undefined
  min?: number
  max?: number
  color: string
  note?: string
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function fmt(v: number): string {
  if (v >= 100) return Math.round(v).toLocaleString('en-US')
  if (v >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

export function barChart(
  title: string,
  unit: string,
  bars: readonly Bar[],
  legend: readonly [string, string][],
): string {
  const labelW = 210
  const plotW = 440
  const rowH = 22
  const top = 44
  const width = labelW + plotW + 120
  const height = top + bars.length * rowH + 40
  const max = Math.max(1e-9, ...bars.map((b) => b.max ?? b.value ?? 0))
  const x = (v: number) => labelW + (v / max) * plotW
  const parts: string[] = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="34" fill="#555">median of valid runs (bar), min–max (whisker); ${esc(unit)}</text>`,
  )
  bars.forEach((b, i) => {
    const y = top + i * rowH
    parts.push(`<text x="${labelW - 6}" y="${y + 14}" text-anchor="end">${esc(b.label)}</text>`)
    if (b.value === undefined) {
      parts.push(`<text x="${labelW + 4}" y="${y + 14}" fill="#b00">${esc(b.note ?? 'no valid run')}</text>`)
      return
    }
    parts.push(
      `<rect x="${labelW}" y="${y + 3}" width="${Math.max(1, x(b.value) - labelW).toFixed(1)}" height="${rowH - 8}" fill="${b.color}"/>`,
    )
    if (b.min !== undefined && b.max !== undefined) {
      const cy = y + rowH / 2 - 1
      parts.push(
        `<line x1="${x(b.min).toFixed(1)}" x2="${x(b.max).toFixed(1)}" y1="${cy}" y2="${cy}" stroke="#222"/>`,
        `<line x1="${x(b.min).toFixed(1)}" x2="${x(b.min).toFixed(1)}" y1="${cy - 4}" y2="${cy + 4}" stroke="#222"/>`,
        `<line x1="${x(b.max).toFixed(1)}" x2="${x(b.max).toFixed(1)}" y1="${cy - 4}" y2="${cy + 4}" stroke="#222"/>`,
      )
    }
    const end = Math.max(x(b.value), b.max !== undefined ? x(b.max) : 0)
    parts.push(
      `<text x="${(end + 6).toFixed(1)}" y="${y + 14}">${fmt(b.value)}${b.note ? ` ${esc(b.note)}` : ''}</text>`,
    )
  })
  const ly = top + bars.length * rowH + 22
  let lx = 10
  for (const [name, color] of legend) {
    parts.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${color}"/>`)
    parts.push(`<text x="${lx + 16}" y="${ly}">${esc(name)}</text>`)
    lx += 30 + name.length * 7
  }
  parts.push('</svg>')
  return `${parts.join('\n')}\n`
}
