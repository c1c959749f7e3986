export type {
  AppConformanceOptions,
  BrokerConformanceOptions,
  ResultBackendConformanceOptions,
  SkipList,
} from './options.js'
