import createError from '@fastify/error'
import { HubException } from './hub/hub-exception.js'

// Every error this package raises. Messages name the bad value and the fix; codes are stable,
// so callers and tests match on `code`, never on message text.

export const InvalidOptionError = createError<[string, string, string]>(
  'FST_BACKPLANE_INVALID_OPTION',
  'Invalid option "%s": %s. %s',
  500,
  TypeError
)

export const InvalidRedisUrlError = createError<[string, string]>(
  'FST_BACKPLANE_INVALID_REDIS_URL',
  'Invalid Redis URL "%s": %s. Use redis://[user:password@]host[:port][/db] or rediss:// for TLS, with reserved characters in the user and password percent-encoded.',
  500,
  TypeError
)

export const InvalidBroadcastError = createError<[string, string]>(
  'FST_BACKPLANE_INVALID_BROADCAST',
  'Invalid broadcast %s: %s',
  500,
  TypeError
)

export const HubNotSpecifiedError = createError<[string]>(
  'FST_BACKPLANE_HUB_NOT_SPECIFIED',
  'broadcast() needs the "hub" option because this instance has %s. Pass { hub: "<hub name>" }.',
  500,
  TypeError
)

export const InvalidGroupNameError = createError<[string, string]>(
  'FST_BACKPLANE_INVALID_GROUP_NAME',
  'Invalid group name %s: %s',
  500,
  TypeError
)

export const InvalidUserIdError = createError<[string, string]>(
  'FST_BACKPLANE_INVALID_USER_ID',
  'Invalid user id %s: %s',
  500,
  TypeError
)

export const InvalidConnectionIdError = createError<[string, string]>(
  'FST_BACKPLANE_INVALID_CONNECTION_ID',
  'Invalid connection id %s: %s',
  500,
  TypeError
)

export const ConnectionNotFoundError = createError<[string, string, number]>(
  'FST_BACKPLANE_CONNECTION_NOT_FOUND',
  'No instance of hub "%s" acknowledged connection "%s" within %d ms. The connection may have closed; connection ids are valid only while the client stays connected.',
  404
)

export const PublishFailedError = createError<[string, string]>(
  'FST_BACKPLANE_PUBLISH_FAILED',
  'Publishing to channel "%s" failed: %s. Check that Redis is reachable; messages are not buffered while it is down.',
  500
)

export const RedisUnreachableError = createError<[string, number, string]>(
  'FST_BACKPLANE_REDIS_UNREACHABLE',
  'Redis at %s was not ready within %d ms (last error: %s). Check that the redis option or REDIS_URL names a running server, or raise connectTimeout.',
  500
)

export const RedisRejectedError = createError<[string, string]>(
  'FST_BACKPLANE_REDIS_REJECTED',
  'Redis at %s rejected the connection: %s. Check the user, password and database in the redis option or REDIS_URL, or the TLS settings for a rediss:// URL.',
  500
)

export const SubscribeFailedError = createError<[string, string]>(
  'FST_BACKPLANE_SUBSCRIBE_FAILED',
  'Subscribing to channel "%s" failed: %s. Check that Redis is reachable.',
  500
)

export const BackplaneClosedError = createError(
  'FST_BACKPLANE_CLOSED',
  'The backplane is closed. Broadcast before fastify.close(), or check fastify.backplane.closed first.',
  500
)

export const HandshakeError = createError<[string]>(
  'FST_BACKPLANE_HANDSHAKE_FAILED',
  'SignalR handshake failed: %s',
  400
)

export const ProtocolError = createError<[string]>(
  'FST_BACKPLANE_PROTOCOL_ERROR',
  'SignalR protocol error: %s',
  400
)

export const MessageTooLargeError = createError<[number, number]>(
  'FST_BACKPLANE_MESSAGE_TOO_LARGE',
  'Incoming message of at least %d bytes exceeds maximumReceiveMessageSize (%d bytes). Send smaller messages or raise the hub option.',
  413
)

export const MethodNotFoundError = createError<[string, string]>(
  'FST_BACKPLANE_METHOD_NOT_FOUND',
  'Hub "%s" has no method "%s". Add it to the hub\'s methods option; method names match case-insensitively.',
  404
)

export const MethodFailedError = createError<[string, string]>(
  'FST_BACKPLANE_METHOD_FAILED',
  'Hub "%s" method "%s" threw an error.',
  500
)

export const ClientTimeoutError = createError<[number]>(
  'FST_BACKPLANE_CLIENT_TIMEOUT',
  'No message received from the client for %d ms. The client should send a Ping at least every keep-alive interval.',
  408
)

export const HandshakeTimeoutError = createError<[number]>(
  'FST_BACKPLANE_HANDSHAKE_TIMEOUT',
  'No handshake received within %d ms of the WebSocket opening.',
  408
)

export const WebSocketsOnlyError = createError<[string]>(
  'FST_BACKPLANE_WEBSOCKETS_ONLY',
  'Hub %s accepts WebSocket connections only. Connect with a WebSocket upgrade; SignalR clients need skipNegotiation: true and transport: HttpTransportType.WebSockets.',
  400
)

export const UnauthorizedError = createError<[string]>(
  'FST_BACKPLANE_UNAUTHORIZED',
  'Hub %s rejected the connection request. Send a valid token in the access_token query parameter or an Authorization: Bearer header.',
  401
)

export const ClientResultTimeoutError = createError<[string, string, number]>(
  'FST_BACKPLANE_CLIENT_RESULT_TIMEOUT',
  'Connection "%s" did not return a result for "%s" within %d ms. The client needs a handler that returns a value, or the connection is gone; raise clientResultTimeout for slow handlers.',
  504
)

export const ClientDisconnectedError = createError<[string, string]>(
  'FST_BACKPLANE_CLIENT_DISCONNECTED',
  'Connection "%s" closed before it returned a result for "%s".',
  503
)

export const ClientResultError = createError<[string, string, string]>(
  'FST_BACKPLANE_CLIENT_RESULT_ERROR',
  'Connection "%s" returned an error for "%s": %s',
  502
)

export const InvalidConnectionTokenError = createError<[string]>(
  'FST_BACKPLANE_INVALID_CONNECTION_TOKEN',
  'Connection token rejected: %s. Negotiate again to get a new token.',
  404
)

export const ConnectionTokenReusedError = createError(
  'FST_BACKPLANE_CONNECTION_TOKEN_REUSED',
  'Connection token already used. Each negotiated token opens one WebSocket; negotiate again for another.',
  409
)

export const SlowClientError = createError<[number, number]>(
  'FST_BACKPLANE_SLOW_CLIENT',
  'The client left %d bytes unread, more than maximumOutgoingBufferSize (%d bytes). It is closed so that it cannot grow server memory; it may reconnect.',
  503
)

// Errors of the hub's security checks. Those with HubException as their base reach the client
// with their code and message, because they describe the client's own request.

export const OriginNotAllowedError = createError<[string, string]>(
  'FST_BACKPLANE_ORIGIN_NOT_ALLOWED',
  'Origin "%s" is not allowed to connect to hub %s. Add it to the hub\'s allowedOrigins option, or serve the page from the hub\'s own origin.',
  403
)

export const TooManyConnectionsError = createError<[string, number]>(
  'FST_BACKPLANE_TOO_MANY_CONNECTIONS',
  'Hub %s already has %d connections on this instance, its maximumConnections limit. Retry later or on another instance; the operator can raise maximumConnections.',
  503
)

export const TooManyConnectionsFromAddressError = createError<[string, number, string]>(
  'FST_BACKPLANE_TOO_MANY_CONNECTIONS_FROM_ADDRESS',
  'Client address %s already has %d connections to hub %s, its maximumConnectionsPerIp limit. Close another connection first; the operator can raise maximumConnectionsPerIp.',
  429
)

export const InvocationRateLimitedError = createError<[number]>(
  'FST_BACKPLANE_RATE_LIMITED',
  'The connection exceeded %d invocations per second, the hub\'s maximumInvocationsPerSecond limit. Wait before invoking again.',
  429,
  HubException as unknown as ErrorConstructor
)

export const RateLimitClosedError = createError<[number, number]>(
  'FST_BACKPLANE_RATE_LIMIT_CLOSED',
  'The connection sent %d invocations over its limit of %d per second without pausing, so the server closed it. Send fewer invocations, then reconnect.',
  429,
  HubException as unknown as ErrorConstructor
)

export const TooManyUploadStreamsError = createError<[number, number, number]>(
  'FST_BACKPLANE_TOO_MANY_UPLOAD_STREAMS',
  'The invocation opens %d upload streams while %d are open, over the limit of %d per connection (maximumUploadStreamsPerClient). Complete open streams first.',
  429,
  HubException as unknown as ErrorConstructor
)

export const TooManyGroupsError = createError<[string, number]>(
  'FST_BACKPLANE_TOO_MANY_GROUPS',
  'Cannot join group %s: the connection is already in %d groups, the hub\'s maximumGroupsPerClient limit. Leave a group first.',
  429,
  HubException as unknown as ErrorConstructor
)

export const GroupForbiddenError = createError<[string]>(
  'FST_BACKPLANE_GROUP_FORBIDDEN',
  'Joining group %s is not allowed for this connection: the hub\'s authorizeGroup option did not return true.',
  403,
  HubException as unknown as ErrorConstructor
)

export const InvocationForbiddenError = createError<[string, string]>(
  'FST_BACKPLANE_INVOCATION_FORBIDDEN',
  'Hub %s denied an invocation of "%s": its authorize option did not return true.',
  403
)

export const InvalidArgumentsError = createError<[string, string, string]>(
  'FST_BACKPLANE_INVALID_ARGUMENTS',
  'Invalid arguments for %s: %s %s. Send arguments that match the method\'s schema.',
  400,
  HubException as unknown as ErrorConstructor
)

export const IdTooLongError = createError<[string, number, number]>(
  'FST_BACKPLANE_ID_TOO_LONG',
  '%s of %d characters exceeds the hub\'s maximumInvocationIdLength of %d. Use shorter ids; official SignalR clients send short counters.',
  400,
  HubException as unknown as ErrorConstructor
)

export const MethodNameTooLongError = createError<[number, number]>(
  'FST_BACKPLANE_METHOD_NAME_TOO_LONG',
  'A method name of %d characters exceeds the hub\'s maximumMethodNameLength of %d, so no hub method has it. Check the method name.',
  400,
  HubException as unknown as ErrorConstructor
)

export const InvalidUtf8Error = createError(
  'FST_BACKPLANE_INVALID_UTF8',
  'A JSON hub message is not valid UTF-8. Encode JSON messages as UTF-8.',
  400,
  ProtocolError as unknown as ErrorConstructor
)

export const UnsupportedFrameTypeError = createError<[string, string]>(
  'FST_BACKPLANE_UNSUPPORTED_FRAME_TYPE',
  'Received a %s WebSocket frame on a connection that speaks the %s hub protocol. Send JSON as text frames and MessagePack as binary frames.',
  400
)
