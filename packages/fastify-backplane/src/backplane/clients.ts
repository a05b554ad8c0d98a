import type { BroadcastOptions } from './targets.js'

/** Invokes a client method on a fixed set of connections. */
export interface ClientProxy {
  /** Invokes `method` with `args`; settles once the message is handed to the transport. */
  send (method: string, ...args: unknown[]): Promise<void>
}

/** One connection, which can also return a result. */
export interface SingleClientProxy extends ClientProxy {
  /**
   * Invokes `method` and resolves with the value the client's handler returns, from any
   * instance. Rejects on timeout, on a client error, or when the connection closes.
   */
  invoke (method: string, ...args: unknown[]): Promise<unknown>
}

/** Recipient selectors in the shape of ASP.NET Core SignalR's `IHubClients`. */
export interface HubClients {
  readonly all: ClientProxy
  allExcept (connectionIds: readonly string[]): ClientProxy
  client (connectionId: string): SingleClientProxy
  clients (connectionIds: readonly string[]): ClientProxy
  group (group: string): ClientProxy
  groups (groups: readonly string[]): ClientProxy
  groupExcept (group: string, connectionIds: readonly string[]): ClientProxy
  user (userId: string): ClientProxy
  users (userIds: readonly string[]): ClientProxy
}

type Send = (method: string, args: readonly unknown[], options: Omit<BroadcastOptions, 'hub'>) => Promise<void>
type Invoke = (connectionId: string, method: string, args: unknown[]) => Promise<unknown>

export function createHubClients (send: Send, invoke: Invoke): HubClients {
  const proxy = (options: Omit<BroadcastOptions, 'hub'>): ClientProxy => ({
    send: (method, ...args) => send(method, args, options)
  })
  return {
    all: proxy({}),
    allExcept: (connectionIds) => proxy({ except: connectionIds }),
    client: (connectionId) => ({
      ...proxy({ connection: connectionId }),
      invoke: (method, ...args) => invoke(connectionId, method, args)
    }),
    clients: (connectionIds) => proxy({ connection: connectionIds }),
    group: (group) => proxy({ group }),
    groups: (groups) => proxy({ group: groups }),
    groupExcept: (group, connectionIds) => proxy({ group, except: connectionIds }),
    user: (userId) => proxy({ user: userId }),
    users: (userIds) => proxy({ user: userIds })
  }
}
