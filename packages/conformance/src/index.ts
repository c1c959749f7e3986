export { runAppConformance } from './app-suite.js'
export { runResultBackendConformance } from './backend-suite.js'
export { runBrokerConformance } from './broker-suite.js'
export type {
  AppConformanceOptions,
  BrokerConformanceOptions,
  BrokerOutage,
  ResultBackendConformanceOptions,
  SkipList,
} from './options.js'
export { type CuttableProxy, startTcpProxy } from './tcp-proxy.js'
