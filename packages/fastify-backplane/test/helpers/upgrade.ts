import WebSocket from 'ws'

/** The HTTP response to a WebSocket upgrade request. */
export interface UpgradeResponse {
  /** 101 when the WebSocket opened, otherwise the status of the rejecting response. */
  status: number
  /** The body of a rejecting response, parsed as JSON when it is JSON, or undefined after 101. */
  body: unknown
}

/**
 * Sends a WebSocket upgrade request to `url` and returns the server's response. An opened
 * WebSocket is closed at once. A rejection is read through ws's 'unexpected-response' event.
 */
export async function requestUpgrade (url: string, headers: Record<string, string> = {}): Promise<UpgradeResponse> {
  const socket = new WebSocket(url, { headers })
  // Aborting a rejected handshake makes ws emit 'error' as well, which is expected here.
  socket.on('error', () => {})

  return await new Promise<UpgradeResponse>((resolve, reject) => {
    socket.once('open', () => {
      socket.close()
      resolve({ status: 101, body: undefined })
    })
    socket.once('unexpected-response', (request, response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => {
        request.destroy()
        resolve({ status: response.statusCode ?? 0, body: parseBody(text) })
      })
      response.on('error', reject)
    })
    socket.once('close', () => reject(new Error(`the upgrade request to ${url} ended without a response`)))
  })
}

function parseBody (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
