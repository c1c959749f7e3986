export { type Dashboard, type DashboardOptions, createDashboard } from './dashboard.js'
export { type DashboardListenerOptions, createDashboardListener, type RunningDashboard, type ServeDashboardOptions, serveDashboard } from './node.js'
export { type QueueCounts, type Sample, Sampler, type SamplerOptions } from './sampler.js'
export { type Authorize, crossOriginRefusal } from './security.js'
