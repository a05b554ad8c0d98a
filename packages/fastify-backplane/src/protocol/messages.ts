// The SignalR hub protocol's message types, as numbered on the wire.
export const MessageType = {
  Invocation: 1,
  StreamItem: 2,
  Completion: 3,
  StreamInvocation: 4,
  CancelInvocation: 5,
  Ping: 6,
  Close: 7,
  Ack: 8,
  Sequence: 9
} as const

export type Headers = Record<string, string>

export interface InvocationMessage {
  type: typeof MessageType.Invocation
  target: string
  arguments: unknown[]
  invocationId?: string
  streamIds?: string[]
  headers?: Headers
}

export interface StreamItemMessage {
  type: typeof MessageType.StreamItem
  invocationId: string
  item: unknown
  headers?: Headers
}

export interface CompletionMessage {
  type: typeof MessageType.Completion
  invocationId: string
  result?: unknown
  error?: string
  headers?: Headers
}

export interface StreamInvocationMessage {
  type: typeof MessageType.StreamInvocation
  invocationId: string
  target: string
  arguments: unknown[]
  streamIds?: string[]
  headers?: Headers
}

export interface CancelInvocationMessage {
  type: typeof MessageType.CancelInvocation
  invocationId: string
  headers?: Headers
}

export interface PingMessage {
  type: typeof MessageType.Ping
}

export interface CloseMessage {
  type: typeof MessageType.Close
  error?: string
  allowReconnect?: boolean
}

export type HubMessage =
  | InvocationMessage
  | StreamItemMessage
  | CompletionMessage
  | StreamInvocationMessage
  | CancelInvocationMessage
  | PingMessage
  | CloseMessage

/** A client's handshake request, the first message on every connection. */
export interface HandshakeRequest {
  protocol: string
  version: number
}

/**
 * A wire protocol that a hub speaks after the handshake. Every frame a protocol writes is
 * complete: broadcasts reuse one encoded buffer for every connection of that protocol.
 */
export interface HubProtocol {
  /** The name clients send in the handshake, such as `json`. */
  readonly name: string
  /** The highest protocol version the server accepts. */
  readonly version: number
  /** Whether frames go out as WebSocket text or binary frames. */
  readonly transferFormat: 'text' | 'binary'
  /**
   * Encodes one message, framing included: the hub joins the messages one connection is sent in
   * one pass into one WebSocket message, and the client splits them apart again.
   */
  writeMessage(message: HubMessage): Buffer
  /** Creates a reader that turns received bytes into messages for one connection. */
  createReader(maximumMessageSize: number): HubMessageReader
}

/** A stateful parser for one connection: bytes in, whole messages out. */
export interface HubMessageReader {
  /**
   * Parses the messages that `chunk` completes. Bytes of a message that is still incomplete
   * stay buffered for the next call. Throws a coded error on a malformed or oversized message.
   */
  read(chunk: Buffer): HubMessage[]
}
