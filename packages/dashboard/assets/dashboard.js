// The Errand dashboard's only page script (served from this package; the CSP allows no inline
// script): write confirmations, live counts over server-sent events, the depth and throughput
// charts, and the live activity list. Everything from a store is written with textContent.
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

  // Throughput: one point per minute (succeeded, failed, dead-lettered), null before the window.
  const tpCanvas = document.getElementById('throughput-chart')
  const tpQueue = tpCanvas && tpCanvas.dataset.all !== '1' ? tpCanvas.dataset.queue : undefined
  const TP_FIELDS = [
    ['succeeded', 'succeeded', '#16a34a'],
    ['failed', 'failed attempts', '#d97706'],
    ['deadLettered', 'dead-lettered', '#dc2626'],
  ]
  let tpChart

  function applyThroughput(points) {
    if (!tpChart) return
    for (const p of points) {
      tpChart.data.datasets.forEach((ds, i) => {
        const y = p[TP_FIELDS[i][0]]
        const at = ds.data.findIndex((d) => d.x === p.at)
        if (at >= 0) ds.data[at] = { x: p.at, y }
        else {
          ds.data.push({ x: p.at, y })
          ds.data.sort((a, b) => a.x - b.x)
        }
        while (ds.data.length > 0 && ds.data[0].x < p.at - HOUR) ds.data.shift()
      })
    }
    tpChart.update('none')
  }

  // The live rows of the activity list, the same markup as the server's activityRow().
  const list = document.getElementById('activity')
  function span(cls, text) {
    const el = document.createElement('span')
    el.className = cls
    el.textContent = text
    return el
  }
  function activityRow(item) {
    const li = document.createElement('li')
    li.className = `event event-${item.type}`
    li.dataset.id = item.id
    li.dataset.key = activityKey(item)
    const iso = new Date(item.at).toISOString()
    const time = document.createElement('time')
    time.dateTime = iso
    time.textContent = iso.slice(11, 19)
    li.append(time, ' ')
    const label = item.type === 'failed' ? (item.willRetry ? 'failed, will retry' : 'failed') : item.type
    li.append(span('event-type', label), ' ', span('task-name', item.task), ' ')
    const link = document.createElement('a')
    link.className = 'task-link'
    link.href = `${base}/tasks/${encodeURIComponent(item.id)}`
    link.textContent = item.id
    li.append(link, ' ', span('attempt', `attempt ${item.attempt}`))
    if (item.durationMs !== undefined) li.append(' ', span('duration', `${Math.round(item.durationMs)} ms`))
    if (item.reason !== undefined) li.append(' ', span('reason', item.reason))
    if (item.error) {
      const err = span('event-error', '')
      const name = document.createElement('strong')
      name.className = 'error-name'
      name.textContent = `${item.error.name}${item.error.code ? ` (${item.error.code})` : ''}:`
      err.append(name, ' ', span('error-message', item.error.message))
      li.append(' ', err)
    }
    return li
  }
  // The same key as the server's activityKey(): one row per event, whoever sent it first.
  function activityKey(item) {
    return `${item.type}|${item.id}|${item.attempt}|${item.at}`
  }
  function applyActivity(items) {
    if (!list) return
    const limit = Number(list.dataset.limit) || 50
    const shown = new Set([...list.children].map((li) => li.dataset.key))
    for (const item of items) {
      if (shown.has(activityKey(item))) continue
      shown.add(activityKey(item))
      list.prepend(activityRow(item))
    }
    while (list.children.length > limit) list.lastElementChild.remove()
    const empty = document.getElementById('activity-empty')
    if (empty && list.children.length > 0) empty.hidden = true
  }

  if (typeof EventSource === 'function') {
    const pageQueue = list ? list.dataset.queue : tpQueue
    const query = pageQueue !== undefined ? `?queue=${encodeURIComponent(pageQueue)}` : ''
    const source = new EventSource(`${base}/events${query}`)
    source.addEventListener('sample', (event) => applySample(JSON.parse(event.data)))
    source.addEventListener('throughput', (event) => applyThroughput(JSON.parse(event.data)))
    source.addEventListener('activity', (event) => applyActivity(JSON.parse(event.data)))
    source.addEventListener('error', () => {
      if (live) live.textContent = 'live: reconnecting…'
    })
  }

  // One line chart over (x: time, y: field) points; the depth and throughput charts differ only
  // in their fields, point size and y-axis title.
  function lineChart(target, fields, points, { pointRadius, yTitle }) {
    return new window.Chart(target, {
      type: 'line',
      data: {
        datasets: fields.map(([key, label, color]) => ({
          label,
          data: points.map((p) => ({ x: p.at, y: p[key] })),
          borderColor: color,
          backgroundColor: color,
          pointRadius,
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
          y: {
            beginAtZero: true,
            ticks: { precision: 0 },
            ...(yTitle ? { title: { display: true, text: yTitle } } : {}),
          },
        },
      },
    })
  }

  // Fetch a chart's points, draw it, and mark the canvas ready (or failed) for whoever waits.
  function loadChart(target, path, queue, draw) {
    const query = queue !== undefined ? `?queue=${encodeURIComponent(queue)}` : ''
    fetch(`${base}${path}${query}`, { credentials: 'same-origin' })
      .then((res) => res.json())
      .then((data) => {
        draw(data)
        target.dataset.ready = '1'
      })
      .catch(() => {
        target.dataset.ready = 'error'
      })
  }

  if (canvas && window.Chart) {
    loadChart(canvas, '/api/history', chartQueue, (history) => {
      chart = lineChart(canvas, FIELDS, history.points, { pointRadius: 0 })
    })
  }

  if (tpCanvas && window.Chart) {
    loadChart(tpCanvas, '/api/throughput', tpQueue, (data) => {
      tpChart = lineChart(tpCanvas, TP_FIELDS, data.points, { pointRadius: 2, yTitle: 'per minute' })
    })
  }
})()
