import type { BroadcastOptions } from './targets.js'

/**
 * The client methods that a hub calls, by name, each with the tuple of its arguments, in the
 * role of the interface `T` of ASP.NET Core SignalR's `Hub<T>`. This default accepts any
 * method name with any arguments. Declare a narrower map to have the compiler check sends:
 *
 * ```ts
 * interface ChatClient { ReceiveMessage: [from: string, text: string] }
 * const chat = app.backplane.hubContext<ChatClient>()
 * await chat.clients.all.send('ReceiveMessage', 'server', 'hello')
 * ```
 */
export type ClientMethods = Record<string, unknown[]>

/**
 * The constraint on a client method map: every property is an argument tuple. It is written
 * over `keyof T` so that interfaces qualify, which have no implicit index signature.
 */
export type ClientMethodMap<T> = { [M in keyof T]: unknown[] }

/** Invokes a client method on a fixed set of connections. */
export interface ClientProxy<TClient extends ClientMethodMap<TClient> = ClientMethods> {
  /** Invokes `method` with `args`; settles once the message is handed to the transport. */
  send<M extends keyof TClient & string> (method: M, ...args: TClient[M]): Promise<void>
}

/** One connection, which can also return a result. */
export interface SingleClientProxy<TClient extends ClientMethodMap<TClient> = ClientMethods> extends ClientProxy<TClient> {
  /**
   * Invokes `method` and resolves with the value the client's handler returns, from any
   * instance. Rejects on timeout, on a client error, or when the connection closes.
   */
  invoke<M extends keyof TClient & string> (method: M, ...args: TClient[M]): Promise<unknown>
}

/** Recipient selectors in the shape of ASP.NET Core SignalR's `IHubClients<T>`. */
export interface HubClients<TClient extends ClientMethodMap<TClient> = ClientMethods> {
  readonly all: ClientProxy<TClient>
  allExcept (connectionIds: readonly string[]): ClientProxy<TClient>
  client (connectionId: string): SingleClientProxy<TClient>
  clients (connectionIds: readonly string[]): ClientProxy<TClient>
  group (group: string): ClientProxy<TClient>
  groups (groups: readonly string[]): ClientProxy<TClient>
  groupExcept (group: string, connectionIds: readonly string[]): ClientProxy<TClient>
  user (userId: string): ClientProxy<TClient>
  users (userIds: readonly string[]): ClientProxy<TClient>
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
