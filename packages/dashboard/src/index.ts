export { createDashboard, type Dashboard, type DashboardOptions } from './dashboard.js'
export {
  createDashboardListener,
  type DashboardListenerOptions,
  type RunningDashboard,
  type ServeDashboardOptions,
  serveDashboard,
} from './node.js'
export { type QueueCounts, type Sample, Sampler, type SamplerOptions } from './sampler.js'
export { type Authorize, crossOriginRefusal } from './security.js'
