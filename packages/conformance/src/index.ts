export { runBrokerConformance } from './broker-suite.js'
export type {
  AppConformanceOptions,
  BrokerConformanceOptions,
  ResultBackendConformanceOptions,
  SkipList,
} from './options.js'
