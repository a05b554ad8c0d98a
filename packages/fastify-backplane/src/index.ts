import { backplane } from './backplane/plugin.js'

export default backplane
export { backplane }
export { hub } from './hub/plugin.js'
export { HubException } from './hub/hub-exception.js'
export { redactUrl, requestSerializer } from './hub/request-serializer.js'
export { jsonHubProtocol } from './protocol/json.js'
export { messagePackHubProtocol } from './protocol/msgpack.js'
export { MessageType } from './protocol/messages.js'
export { InProcessBus } from './transport/in-process.js'
export { parseRedisUrl, redactRedisUrl } from './transport/redis-url.js'
export { MAXIMUM_NAME_LENGTH } from './backplane/targets.js'
export * as errors from './errors.js'

export type { Backplane, BackplaneHealth, BroadcastFunction, HubContext, Presence } from './backplane/backplane.js'
export type { BroadcastOptions } from './backplane/targets.js'
export type { ClientMethodMap, ClientMethods, ClientProxy, HubClients, SingleClientProxy } from './backplane/clients.js'
export type { BackplaneBaseOptions, BackplaneOptions, RedisClusterOption } from './backplane/options.js'
export type { CallerClients, HubAuthenticate, HubAuthorize, HubAuthorizeGroup, HubConnectionContext, HubConnectionGroups, HubMethod, HubMethodDefinition, HubOptions } from './hub/options.js'
export type { HubOriginCheck } from './hub/origin.js'
export type { HubMessage, HubMessageReader, HubProtocol } from './protocol/messages.js'
export type { Transport } from './transport/transport.js'
