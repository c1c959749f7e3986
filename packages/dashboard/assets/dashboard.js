// The Errand dashboard's only page script (served from this package; the CSP allows no inline
// script): write confirmations, live counts over server-sent events, and the depth chart.
;(() => {
  const base = document.body.dataset.base || ''
  const HOUR = 3_600_000

  // Every write asks first. The form carries `confirmed` so the server does not ask again; a
  // browser without this script gets the server's confirmation page instead.
  document.addEventListener('submit', (event) => {
    const form = event.target
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault()
      return
    }
    const field = form.querySelector('input[name="confirmed"]')
    if (field) field.value = '1'
  })

  const fmt = (n) => (n === null || n === undefined ? '–' : String(n))
  const live = document.getElementById('live')
  const canvas = document.getElementById('depth-chart')
  const chartQueue = canvas && canvas.dataset.all !== '1' ? canvas.dataset.queue : undefined
  let chart

  // The same reading as the server's depthPoints(): one queue, or every queue summed.
  function pointOf(sample) {
    if (chartQueue !== undefined) {
      const c = sample.queues[chartQueue]
      return c && { at: sample.at, ready: c.ready, inFlight: c.inFlight, dead: c.dead }
    }
    let ready = 0
    let dead = 0
    let inFlight = null
    for (const c of Object.values(sample.queues)) {
      ready += c.ready
      dead += c.dead
      if (c.inFlight !== null) inFlight = (inFlight ?? 0) + c.inFlight
    }
    return { at: sample.at, ready, inFlight, dead }
  }

  const FIELDS = [
    ['ready', 'ready', '#2563eb'],
    ['inFlight', 'in flight', '#d97706'],
    ['dead', 'dead', '#dc2626'],
  ]

  function addPoint(p) {
    if (!chart || !p) return
    chart.data.datasets.forEach((ds, i) => {
      ds.data.push({ x: p.at, y: p[FIELDS[i][0]] })
      while (ds.data.length > 0 && ds.data[0].x < p.at - HOUR) ds.data.shift()
    })
    chart.update('none')
  }

  function applySample(sample) {
    for (const cell of document.querySelectorAll('td[data-queue][data-field]')) {
      const counts = sample.queues[cell.dataset.queue]
      if (!counts) continue
      const text = fmt(counts[cell.dataset.field])
      // textContent, never innerHTML: queue names and counts are data.
      if (cell.textContent !== text) cell.textContent = text
    }
    addPoint(pointOf(sample))
    if (live) {
      live.textContent = `live: updated ${new Date(sample.at).toLocaleTimeString()}`
      live.dataset.at = String(sample.at)
    }
  }

  if (typeof EventSource === 'function') {
    const source = new EventSource(`${base}/events`)
    source.addEventListener('sample', (event) => applySample(JSON.parse(event.data)))
    source.addEventListener('error', () => {
      if (live) live.textContent = 'live: reconnecting…'
    })
  }

  if (canvas && window.Chart) {
    const query = chartQueue !== undefined ? `?queue=${encodeURIComponent(chartQueue)}` : ''
    fetch(`${base}/api/history${query}`, { credentials: 'same-origin' })
      .then((res) => res.json())
      .then((history) => {
        chart = new window.Chart(canvas, {
          type: 'line',
          data: {
            datasets: FIELDS.map(([key, label, color]) => ({
              label,
              data: history.points.map((p) => ({ x: p.at, y: p[key] })),
              borderColor: color,
              backgroundColor: color,
              pointRadius: 0,
              borderWidth: 2,
              spanGaps: false,
            })),
          },
          options: {
            animation: false,
            maintainAspectRatio: false,
            interaction: { mode: 'nearest', axis: 'x', intersect: false },
            scales: {
              x: {
                type: 'linear',
                ticks: { callback: (v) => new Date(v).toLocaleTimeString(), maxTicksLimit: 8 },
              },
              y: { beginAtZero: true, ticks: { precision: 0 } },
            },
          },
        })
        canvas.dataset.ready = '1'
      })
      .catch(() => {
        canvas.dataset.ready = 'error'
      })
  }
})()
