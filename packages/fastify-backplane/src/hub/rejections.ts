import { HubException } from './hub-exception.js'

// Texts and close frames for requests that the hub's security checks reject. SignalR has no
// standard text for these checks (except authorization), so each text names the coded error,
// which carries the bad value and the fix.

/** WebSocket close code for a data type the endpoint does not accept (RFC 6455, 7.4.1). */
export const CLOSE_UNSUPPORTED_DATA = 1003
/** WebSocket close code for data that does not match the message type (RFC 6455, 7.4.1). */
export const CLOSE_INVALID_PAYLOAD = 1007
/** WebSocket close code for a message that violates the server's policy (RFC 6455, 7.4.1). */
export const CLOSE_POLICY_VIOLATION = 1008

/** A coded error of this package: `code` is stable, `message` names the value and the fix. */
export interface CodedError extends Error {
  code: string
}

/** Returns the text that ASP.NET Core SignalR's DefaultHubDispatcher sends when a hub method's authorization fails. */
export function invocationUnauthorized (target: string): string {
  return `Failed to invoke '${target}' because user is unauthorized`
}

/** Returns the Completion error for an invocation rejected before its method ran. */
export function invocationRejected (target: string, err: CodedError): string {
  return `Failed to invoke '${shorten(target)}'. ${err.code}: ${err.message}`
}

/** Returns the Close message error for a connection that a security check closed. */
export function connectionRejected (err: CodedError): string {
  return `Connection closed with an error. ${err.code}: ${err.message}`
}

/**
 * Returns the error a client sees for one that a hub method threw. Coded errors of this
 * package that extend HubException describe the client's own request, such as a group join
 * that `authorizeGroup` denied, so the client gets their code and message. Other errors pass
 * through unchanged.
 */
export function toClientError (err: unknown): unknown {
  if (!(err instanceof HubException) || !isCodedError(err) || !err.code.startsWith('FST_BACKPLANE_')) return err
  return new HubException(`${err.code}: ${err.message}`)
}

/**
 * Returns the WebSocket close code and reason for a connection closed by `err`. The reason is
 * the error code, so that a client without the SignalR Close message still learns the cause.
 * Invalid UTF-8 gets 1007 and a frame of the wrong type 1003. Every other hub protocol error
 * keeps 1000, because the SignalR Close message already reports the error.
 */
export function closeFrameFor (err: Error): { code: number, reason: string | undefined } {
  if (!isCodedError(err)) return { code: 1000, reason: undefined }
  let code = 1000
  if (err.code === 'FST_BACKPLANE_INVALID_UTF8') code = CLOSE_INVALID_PAYLOAD
  else if (err.code === 'FST_BACKPLANE_UNSUPPORTED_FRAME_TYPE') code = CLOSE_UNSUPPORTED_DATA
  // Codes are ASCII and far below the 123 bytes that a close frame has room for.
  return { code, reason: err.code }
}

export function isCodedError (err: unknown): err is CodedError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string'
}

/** Shortens a client-supplied name for an error text, so a long name cannot bloat the reply. */
function shorten (text: string): string {
  return text.length <= 64 ? text : `${text.slice(0, 64)}...`
}
