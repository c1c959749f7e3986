import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'

/** Sockets per pool: room for every receive loop of many consumers plus the batch calls. */
const MAX_SOCKETS = 256

function unref(socket: Duplex): void {
  ;(socket as Partial<Socket>).unref?.()
}

/**
 * The HTTP(S) socket pools of a client the broker created, which a closed broker lets go of.
 *
 * Why: `close()` does not abort long polls in flight (SQS keeps serving a poll whose client left,
 * hiding what it takes for a visibility timeout), so they finish in the background, give back
 * what they bring, and then the client is destroyed. Their sockets would keep the process alive
 * for up to `waitTimeSeconds` after its work is done. `release()` unrefs every socket of the
 * pools, including those that in-flight requests pick up afterwards: the polls still finish if
 * anything else keeps the process running, and do not hold it open on their own. Other calls
 * are unaffected: the SDK holds the process for them with its request-timeout timer (polls run
 * without it, see `Store.receive`).
 */
export class SocketPools {
  readonly http: HttpAgent
  readonly https: HttpsAgent
  readonly #sockets = new Set<Duplex>()
  #released = false

  constructor() {
    this.http = this.#watch(new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }))
    this.https = this.#watch(new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }))
  }

  /** From now on no socket of these pools keeps the process alive. */
  release(): void {
    this.#released = true
    for (const socket of this.#sockets) unref(socket)
  }

  #watch<A extends HttpAgent>(agent: A): A {
    const create = agent.createConnection.bind(agent)
    agent.createConnection = (options, callback) => {
      const socket = create(options, callback)
      if (socket) this.#track(socket)
      return socket
    }
    // The pool refs a socket when it hands it to a request; after release, undo that.
    const reuse = agent.reuseSocket.bind(agent)
    agent.reuseSocket = (socket, request) => {
      reuse(socket, request)
      if (this.#released) unref(socket)
    }
    return agent
  }

  #track(socket: Duplex): void {
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    if (this.#released) unref(socket)
  }
}
