// Joins the lobby of a hub, sends one message and prints every message until Ctrl+C.
// Usage: node client.js [hub URL], by default http://127.0.0.1:3000/chatHub
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'

const url = process.argv[2] ?? 'http://127.0.0.1:3000/chatHub'

// WebSockets with negotiation skipped need no sticky sessions behind a round-robin router.
const connection = new HubConnectionBuilder()
  .withUrl(url, { skipNegotiation: true, transport: HttpTransportType.WebSockets })
  .withAutomaticReconnect()
  .configureLogging(LogLevel.Warning)
  .build()

connection.on('ReceiveMessage', (from, text) => console.log(`${from}: ${text}`))
await connection.start()
await connection.invoke('JoinRoom', 'lobby')
await connection.invoke('SendMessage', 'lobby', `hello from process ${process.pid}`)
console.log(`joined the lobby at ${url}; press Ctrl+C to leave`)

process.once('SIGINT', () => {
  connection.stop().then(() => process.exit(0))
})
