import { EventEmitter } from 'node:events'

/**
 * Wakes this process's idle consumers when it publishes or gives rows back, so a consumer in the
 * same process never waits for its poll. Other processes are found by polling (`pollMs`): MySQL
 * has no LISTEN/NOTIFY. One bus per process, shared by every broker on the same tables (a
 * publish through one broker wakes the consumers of another); the event names a store and queue.
 */
export const WakeBus: EventEmitter = new EventEmitter().setMaxListeners(0)
