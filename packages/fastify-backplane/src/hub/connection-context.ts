import type { FastifyBaseLogger } from 'fastify'
import type { HubContext } from '../backplane/backplane.js'
import type { BroadcastOptions } from '../backplane/targets.js'
import { MessageType } from '../protocol/messages.js'
import type { HubConnection } from './connection.js'
import type { Hub } from './hub.js'
import type { CallerClients, HubConnectionContext, HubConnectionGroups } from './options.js'

/**
 * The context of one connection, which hub methods, `onConnected` and `onDisconnected`
 * receive. Every connection that has run `onConnected` or a method keeps its context, so the
 * members are getters and prototype methods, and `items`, `groups` and `clients` are created on
 * first use.
 */
export class ConnectionContext implements HubConnectionContext {
  readonly #connection: HubConnection
  readonly #hub: Hub
  #items: Map<unknown, unknown> | undefined
  #groups: HubConnectionGroups | undefined
  #clients: CallerClients | undefined

  constructor (connection: HubConnection, hub: Hub) {
    this.#connection = connection
    this.#hub = hub
  }

  get connectionId (): string {
    return this.#connection.id
  }

  get userId (): string | undefined {
    return this.#connection.userId
  }

  get hub (): string {
    return this.#hub.name
  }

  get log (): FastifyBaseLogger {
    return this.#connection.log
  }

  get items (): Map<unknown, unknown> {
    this.#items ??= new Map()
    return this.#items
  }

  get groups (): HubConnectionGroups {
    this.#groups ??= this.#hub.createGroups(this, this.#connection)
    return this.#groups
  }

  get clients (): CallerClients {
    if (this.#clients === undefined) {
      const clients = this.hubContext.clients
      const id = this.#connection.id
      this.#clients = {
        ...clients,
        caller: {
          send: (method, ...args) => this.send(method, ...args),
          invoke: (method, ...args) => this.invoke(method, ...args)
        },
        others: clients.allExcept([id]),
        othersInGroup: (group) => clients.groupExcept(group, [id])
      }
    }
    return this.#clients
  }

  get hubContext (): HubContext {
    return this.#hub.hubContext
  }

  invoke (method: string, ...args: unknown[]): Promise<unknown> {
    return this.#connection.invokeClient(method, args)
  }

  send (method: string, ...args: unknown[]): Promise<void> {
    return this.#connection.sendMessage({ type: MessageType.Invocation, target: method, arguments: args })
  }

  broadcast (method: string, args?: readonly unknown[], options?: Omit<BroadcastOptions, 'hub'>): Promise<void> {
    return this.#hub.broadcast(method, args, options)
  }
}
