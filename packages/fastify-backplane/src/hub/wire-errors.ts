import { HubException } from './hub-exception.js'

// The exact error texts that ASP.NET Core SignalR servers send, which SignalR clients and the
// apps written against them expect. The coded error with the details goes to the log instead.

export const HANDSHAKE_CANCELED = 'Handshake was canceled.'

export function handshakeFailed (err: Error, detailed: boolean): string {
  return withDetail('An unexpected error occurred during connection handshake.', err, detailed)
}

export function protocolNotSupported (protocol: string): string {
  return `The protocol '${protocol}' is not supported.`
}

export function protocolVersionNotSupported (protocol: string, version: number): string {
  return `The server does not support version ${version} of the '${protocol}' protocol.`
}

export function methodDoesNotExist (method: string): string {
  return `Failed to invoke '${method}' due to an error on the server. HubException: Method does not exist.`
}

export function invocationFailed (method: string, err: unknown, detailed: boolean): string {
  return withDetail(`An unexpected error occurred invoking '${method}' on the server.`, err, detailed)
}

export function streamingInvocationOfNonStreamingMethod (method: string): string {
  return `The client attempted to invoke the non-streaming '${method}' method with a streaming invocation.`
}

export function invocationOfStreamingMethod (method: string): string {
  return `The client attempted to invoke the streaming '${method}' method with a non-streaming invocation.`
}

export function streamFailed (err: unknown, detailed: boolean): string {
  return withDetail('An error occurred on the server while streaming results.', err, detailed)
}

export function connectionClosedWithError (err: unknown, detailed: boolean): string {
  return withDetail('Connection closed with an error.', err, detailed)
}

/** Appends `Type: message` when the error is a HubException or detailed errors are on. */
function withDetail (text: string, err: unknown, detailed: boolean): string {
  if (!(err instanceof Error)) return text
  if (!(err instanceof HubException) && !detailed) return text
  return `${text} ${err.name}: ${err.message}`
}
