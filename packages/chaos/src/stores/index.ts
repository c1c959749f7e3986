import { openAmqpRig } from './amqp-rig.js'
import { openPostgresRig } from './postgres-rig.js'
import { openRedisRig } from './redis-rig.js'
import type { StoreName, StoreRig } from './rig.js'
import { openSqsRig } from './sqs-rig.js'

/** Set up `store` for one chaos run. */
export function openRig(store: StoreName): Promise<StoreRig> {
  switch (store) {
    case 'redis':
      return openRedisRig()
    case 'postgres':
      return openPostgresRig()
    case 'amqp':
      return openAmqpRig()
    case 'sqs':
      return openSqsRig()
  }
}
