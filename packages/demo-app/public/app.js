// The notes board page. It needs the SignalR browser bundle, which index.html loads first and
// which defines the global `signalR`.
'use strict'

;(function () {
  const DEFAULT_BOARD_ID = 'general'
  const RESTART_DELAY_MS = 5000

  const elements = {
    boardName: document.getElementById('board-name'),
    boardInput: document.getElementById('board-input'),
    connectionState: document.getElementById('connection-state'),
    instanceId: document.getElementById('instance-id'),
    form: document.getElementById('note-form'),
    text: document.getElementById('note-text'),
    submit: document.getElementById('add-note'),
    error: document.getElementById('note-error'),
    notes: document.getElementById('notes'),
    emptyMessage: document.getElementById('empty-message')
  }

  const boardId = new URLSearchParams(window.location.search).get('board') || DEFAULT_BOARD_ID
  elements.boardName.textContent = boardId
  elements.boardInput.value = boardId
  document.title = `${boardId} – Notes board`

  // Notes already shown, by id. A note can arrive twice: as AddNote's result and as NoteAdded,
  // or as NoteAdded and again in JoinBoard's list after a reconnect.
  const shownNoteIds = new Set()
  let adding = false

  const connection = new signalR.HubConnectionBuilder()
    // The hub accepts WebSockets only, so the client skips the negotiate request.
    .withUrl('/noteHub', { skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets })
    .withAutomaticReconnect()
    .configureLogging(signalR.LogLevel.Warning)
    .build()

  connection.on('NoteAdded', showNote)

  connection.onreconnecting(() => {
    setConnectionState('reconnecting', 'Reconnecting…')
    elements.instanceId.textContent = 'unknown'
  })

  // The new connection may be on another instance and has joined no group yet.
  connection.onreconnected(() => { void joinBoard() })

  // With its default delays of 0, 2, 10 and 30 s, automatic reconnect gives up after four
  // attempts. From then on, the page tries again every RESTART_DELAY_MS.
  connection.onclose(() => {
    setConnectionState('disconnected', 'Disconnected. Retrying in a few seconds…')
    elements.instanceId.textContent = 'unknown'
    window.setTimeout(start, RESTART_DELAY_MS)
  })

  elements.form.addEventListener('submit', (event) => {
    event.preventDefault()
    void addNote()
  })

  void start()

  async function start () {
    setConnectionState('connecting', 'Connecting…')
    try {
      await connection.start()
    } catch (err) {
      console.warn('Connecting to the notes hub failed', err)
      setConnectionState('disconnected', 'Cannot connect. Retrying in a few seconds…')
      window.setTimeout(start, RESTART_DELAY_MS)
      return
    }
    await joinBoard()
  }

  async function joinBoard () {
    try {
      const [notes, instanceId] = await Promise.all([
        connection.invoke('JoinBoard', boardId),
        connection.invoke('GetInstanceId')
      ])
      elements.instanceId.textContent = instanceId
      notes.forEach(showNote)
      setConnectionState('connected', 'Connected')
    } catch (err) {
      setConnectionState('error', `Cannot open this board: ${describeError(err)}`)
    }
  }

  async function addNote () {
    hideError()
    adding = true
    updateSubmitButton()
    try {
      const note = await connection.invoke('AddNote', boardId, elements.text.value)
      showNote(note)
      elements.text.value = ''
      elements.text.focus()
    } catch (err) {
      showError(describeError(err))
    } finally {
      adding = false
      updateSubmitButton()
    }
  }

  /** Inserts a note into the list, newest first, unless it is already shown. */
  function showNote (note) {
    if (note.boardId !== boardId || shownNoteIds.has(note.id)) return
    shownNoteIds.add(note.id)

    const item = document.createElement('li')
    item.className = 'note'
    item.dataset.noteId = note.id
    item.dataset.createdAt = note.createdAt

    const text = document.createElement('p')
    text.className = 'note-text'
    text.textContent = note.text

    const meta = document.createElement('p')
    meta.className = 'note-meta'
    const time = document.createElement('time')
    time.dateTime = note.createdAt
    time.textContent = new Date(note.createdAt).toLocaleString()
    meta.append('Added ', time, ` on instance ${note.instanceId}`)

    item.append(text, meta)

    // ISO 8601 timestamps in UTC sort correctly as strings.
    const newer = Array.from(elements.notes.children).find((other) => other.dataset.createdAt < note.createdAt)
    elements.notes.insertBefore(item, newer ?? null)
    elements.emptyMessage.hidden = true
  }

  function setConnectionState (state, label) {
    elements.connectionState.dataset.state = state
    elements.connectionState.textContent = label
    document.body.dataset.connectionState = state
    updateSubmitButton()
  }

  function updateSubmitButton () {
    elements.submit.disabled = adding || elements.connectionState.dataset.state !== 'connected'
  }

  function showError (message) {
    elements.error.textContent = message
    elements.error.hidden = false
  }

  function hideError () {
    elements.error.textContent = ''
    elements.error.hidden = true
  }

  /** Returns the text after "HubException: " in a hub error, which the server wrote for users. */
  function describeError (err) {
    const message = err instanceof Error ? err.message : String(err)
    const marker = 'HubException: '
    const index = message.indexOf(marker)
    return index === -1 ? message : message.slice(index + marker.length)
  }
})()
