import createError from '@fastify/error'

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
