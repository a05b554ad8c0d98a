// The notes board page. It needs the SignalR browser bundle, which index.html loads first and
// which defines the global `signalR`.
'use strict'

;(function () {
  const DEFAULT_BOARD_ID = 'general'
  /** Delay before starting a new connection after the previous one closed for good. */
  const RESTART_DELAY_MS = 5000
  /** Reconnect delays for the first attempts. Later attempts repeat the last one, forever. */
  const RECONNECT_DELAYS_MS = [0, 2000, 5000, 10000]
  /** Random extra delay per attempt, so that the clients of a stopped instance spread out. */
  const RECONNECT_JITTER_MS = 1000
  /**
   * How long a change may wait for an earlier revision before the page reloads the board.
   * Changes from two instances can arrive out of order, and pub/sub can lose messages.
   */
  const GAP_RELOAD_DELAY_MS = 1000

  /** The message that carries the change each hub method makes. */
  const CHANGE_OF_METHOD = {
    AddNote: 'NoteAdded',
    EditNote: 'NoteEdited',
    MoveNote: 'NoteMoved',
    DeleteNote: 'NoteDeleted'
  }

  const elements = {
    boardName: document.getElementById('board-name'),
    boardInput: document.getElementById('board-input'),
    connectionState: document.getElementById('connection-state'),
    presenceCount: document.getElementById('presence-count'),
    instanceId: document.getElementById('instance-id'),
    connectionId: document.getElementById('connection-id'),
    form: document.getElementById('note-form'),
    text: document.getElementById('note-text'),
    submit: document.getElementById('add-note'),
    error: document.getElementById('note-error'),
    notes: document.getElementById('notes'),
    notesError: document.getElementById('notes-error'),
    noteCount: document.getElementById('note-count'),
    emptyMessage: document.getElementById('empty-message'),
    announcer: document.getElementById('announcer'),
    noteTemplate: document.getElementById('note-template'),
    editTemplate: document.getElementById('edit-template')
  }

  const boardId = new URLSearchParams(window.location.search).get('board') || DEFAULT_BOARD_ID
  elements.boardName.textContent = boardId
  elements.boardInput.value = boardId
  document.title = `${boardId} – Notes board`

  /**
   * The board as this page has it. `loaded` is false while a snapshot is on its way; changes
   * that arrive meanwhile wait in `queued`. Changes whose revision is not the next one wait in
   * `pending` until the missing ones arrive or GAP_RELOAD_DELAY_MS passes.
   */
  const board = {
    loaded: false,
    epoch: null,
    revision: 0,
    /** Top of the board first. */
    notes: [],
    queued: [],
    pending: new Map()
  }
  /** The list item of each note shown, by note id. */
  const items = new Map()
  let gapTimer
  let loading
  let adding = false

  /** Applies a change to `board.notes`. Returns false when the change does not fit the notes. */
  const applyChange = {
    NoteAdded (change) {
      if (indexOfNote(change.note.id) !== -1) return false
      board.notes.splice(change.index, 0, change.note)
      return true
    },
    NoteEdited (change) {
      const index = indexOfNote(change.note.id)
      if (index === -1) return false
      board.notes[index] = change.note
      return true
    },
    NoteMoved (change) {
      const index = indexOfNote(change.noteId)
      if (index === -1) return false
      const [note] = board.notes.splice(index, 1)
      board.notes.splice(change.index, 0, note)
      return true
    },
    NoteDeleted (change) {
      const index = indexOfNote(change.noteId)
      if (index === -1) return false
      board.notes.splice(index, 1)
      return true
    }
  }

  const connection = new signalR.HubConnectionBuilder()
    // The hub accepts WebSockets only, so the client skips the negotiate request.
    .withUrl('/noteHub', { skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets })
    .withAutomaticReconnect({
      nextRetryDelayInMilliseconds (context) {
        const delay = RECONNECT_DELAYS_MS[Math.min(context.previousRetryCount, RECONNECT_DELAYS_MS.length - 1)]
        return delay + Math.random() * RECONNECT_JITTER_MS
      }
    })
    .configureLogging(signalR.LogLevel.Warning)
    .build()

  for (const method of Object.keys(applyChange)) {
    connection.on(method, (change) => receive(method, change))
  }
  connection.on('PresenceChanged', showPresence)

  connection.onreconnecting(() => {
    board.loaded = false
    setConnectionState('reconnecting', 'Connection lost. Reconnecting…')
    showConnectionInfo(undefined)
  })

  // The new connection may be on another instance and has joined no group yet, and changes
  // made meanwhile never reached this page, so it joins again and reloads the whole board.
  connection.onreconnected(() => {
    setConnectionState('connecting', 'Reconnected. Reloading the board…')
    void openBoard()
  })

  // Automatic reconnect never gives up, so this runs when the server closed the connection
  // without allowing a reconnect. The page starts a new connection after RESTART_DELAY_MS.
  connection.onclose(() => {
    board.loaded = false
    setConnectionState('disconnected', 'Disconnected. Retrying in a few seconds…')
    showConnectionInfo(undefined)
    window.setTimeout(start, RESTART_DELAY_MS)
  })

  elements.form.addEventListener('submit', (event) => {
    event.preventDefault()
    void addNote()
  })
  elements.notes.addEventListener('click', onNoteAction)

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
    await openBoard()
  }

  /** Joins the board on the current connection, loads its notes and shows the connection. */
  async function openBoard () {
    try {
      const [info] = await Promise.all([connection.invoke('GetConnectionInfo'), loadBoard()])
      showConnectionInfo(info)
      setConnectionState('connected', 'Connected')
    } catch (err) {
      if (connection.state !== signalR.HubConnectionState.Connected) return
      const message = describeError(err)
      if (isHubException(err)) {
        setConnectionState('error', `Cannot open this board: ${message}`)
      } else {
        setConnectionState('error', `Cannot open this board: ${message} Retrying in a few seconds…`)
        window.setTimeout(openBoard, RESTART_DELAY_MS)
      }
    }
  }

  /**
   * Replaces the board with a fresh snapshot from JoinBoard, then applies the changes that
   * arrived while it loaded. Concurrent calls share one request.
   */
  function loadBoard () {
    if (loading !== undefined) return loading
    board.loaded = false
    loading = (async () => {
      const snapshot = await connection.invoke('JoinBoard', boardId)
      window.clearTimeout(gapTimer)
      board.epoch = snapshot.epoch
      board.revision = snapshot.revision
      board.notes = snapshot.notes
      board.pending.clear()
      board.loaded = true
      render()
      const queued = board.queued.splice(0)
      for (const [method, change] of queued) receive(method, change)
    })().finally(() => { loading = undefined })
    return loading
  }

  /** Reloads the board after a change that does not fit, unless the connection is down. */
  function reloadBoard () {
    if (connection.state !== signalR.HubConnectionState.Connected) return
    loadBoard().catch((err) => {
      console.warn('Reloading the board failed', err)
      showNotesError(`Reloading the board failed: ${describeError(err)}`)
    })
  }

  /**
   * Applies a change from the server in revision order. A change already covered by the
   * snapshot is skipped, and a change of another epoch means the board was recreated.
   */
  function receive (method, change) {
    if (change.boardId !== boardId) return
    if (!board.loaded) {
      board.queued.push([method, change])
      return
    }
    // A board with no epoch yet gets one with its first change.
    if (board.epoch === null && change.revision === 1) board.epoch = change.epoch
    if (change.epoch !== board.epoch) {
      reloadBoard()
      return
    }
    if (change.revision <= board.revision) return

    board.pending.set(change.revision, [method, change])
    let applied = false
    while (board.pending.has(board.revision + 1)) {
      const [nextMethod, next] = board.pending.get(board.revision + 1)
      board.pending.delete(next.revision)
      if (!applyChange[nextMethod](next)) {
        reloadBoard()
        return
      }
      board.revision = next.revision
      applied = true
      announce(nextMethod, next)
    }
    if (applied) render()

    window.clearTimeout(gapTimer)
    if (board.pending.size > 0) gapTimer = window.setTimeout(reloadBoard, GAP_RELOAD_DELAY_MS)
  }

  async function addNote () {
    hideError(elements.error)
    adding = true
    updateControls()
    try {
      await invokeChange('AddNote', [elements.text.value])
      elements.text.value = ''
      elements.text.focus()
    } catch (err) {
      showError(elements.error, describeError(err))
    } finally {
      adding = false
      updateControls()
    }
  }

  /** Handles the buttons inside the notes list: edit, move up, move down and delete. */
  function onNoteAction (event) {
    const button = event.target.closest('button[data-action]')
    const item = button?.closest('li.note')
    if (button === null || button === undefined || item === null || button.closest('form') !== null) return
    const noteId = item.dataset.noteId
    hideError(elements.notesError)

    switch (button.dataset.action) {
      case 'edit':
        openEditor(item)
        break
      case 'up': {
        const index = indexOfNote(noteId)
        if (index > 0) void changeNote('MoveNote', [noteId, board.notes[index - 1].id])
        break
      }
      case 'down': {
        // Moving down one place means moving above the note after the next one, or to the bottom.
        const index = indexOfNote(noteId)
        if (index !== -1 && index < board.notes.length - 1) {
          void changeNote('MoveNote', [noteId, board.notes[index + 2]?.id ?? null])
        }
        break
      }
      case 'delete':
        void deleteNote(item, noteId)
        break
    }
  }

  /**
   * Invokes a hub method that changes the board and applies the change it returns. The same
   * change also arrives as a message; whichever comes second is skipped by its revision.
   */
  async function invokeChange (method, args) {
    const change = await connection.invoke(method, boardId, ...args)
    receive(CHANGE_OF_METHOD[method], change)
  }

  /** Runs invokeChange and shows a failure above the notes. Returns whether it succeeded. */
  async function changeNote (method, args) {
    try {
      await invokeChange(method, args)
      return true
    } catch (err) {
      showNotesError(describeError(err))
      return false
    }
  }

  async function deleteNote (item, noteId) {
    // Focus moves to the next note, or to the note text box when this was the last one.
    const next = item.nextElementSibling ?? item.previousElementSibling
    if (await changeNote('DeleteNote', [noteId])) {
      const target = next?.querySelector('button[data-action="edit"]') ?? elements.text
      target.focus()
    }
  }

  /** Replaces a note's text with a form to edit it, until it is saved or cancelled. */
  function openEditor (item) {
    if (item.querySelector('.edit-form') !== null) return
    const note = board.notes[indexOfNote(item.dataset.noteId)]
    const form = elements.editTemplate.content.firstElementChild.cloneNode(true)
    const textarea = form.querySelector('textarea')
    const label = form.querySelector('label')
    const error = form.querySelector('.error')
    textarea.id = `edit-${note.id}`
    label.htmlFor = textarea.id
    error.id = `edit-error-${note.id}`
    textarea.setAttribute('aria-describedby', error.id)
    textarea.value = note.text
    item.classList.add('editing')
    item.querySelector('.note-text').after(form)

    const close = () => {
      form.remove()
      item.classList.remove('editing')
      item.querySelector('button[data-action="edit"]').focus()
    }
    form.addEventListener('submit', async (event) => {
      event.preventDefault()
      hideError(error)
      try {
        await invokeChange('EditNote', [note.id, textarea.value])
        close()
      } catch (err) {
        showError(error, describeError(err))
      }
    })
    form.querySelector('button[data-action="cancel"]').addEventListener('click', close)
    form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') close()
    })
    textarea.focus()
  }

  /** Brings the list in line with `board.notes`, reusing each note's element and keeping focus. */
  function render () {
    const focused = document.activeElement
    const ids = new Set(board.notes.map((note) => note.id))
    for (const [id, item] of items) {
      if (!ids.has(id)) {
        if (item.classList.contains('editing')) showNotesError('The note you were editing was deleted by someone else.')
        item.remove()
        items.delete(id)
      }
    }

    board.notes.forEach((note, index) => {
      let item = items.get(note.id)
      if (item === undefined) {
        item = elements.noteTemplate.content.firstElementChild.cloneNode(true)
        item.dataset.noteId = note.id
        item.querySelector('.note-text').id = `note-text-${note.id}`
        for (const button of item.querySelectorAll('.note-actions button')) {
          button.setAttribute('aria-describedby', `note-text-${note.id}`)
        }
        items.set(note.id, item)
      }
      updateItem(item, note)
      const current = elements.notes.children[index]
      if (current !== item) elements.notes.insertBefore(item, current ?? null)
    })

    // Moving an element in the DOM takes the focus away from the button inside it.
    if (focused !== null && focused !== document.activeElement && focused.isConnected) focused.focus()

    const count = board.notes.length
    elements.emptyMessage.hidden = count > 0
    elements.noteCount.textContent = count === 0 ? '' : `(${count})`
    updateControls()
  }

  function updateItem (item, note) {
    item.querySelector('.note-text').textContent = note.text
    const meta = item.querySelector('.note-meta')
    meta.replaceChildren('Added ', timeElement(note.createdAt), ` on ${note.instanceId}`)
    if (note.editedAt !== undefined) {
      meta.append(' · edited ', timeElement(note.editedAt), ` on ${note.editedInstanceId}`)
    }
  }

  function timeElement (timestamp) {
    const time = document.createElement('time')
    time.dateTime = timestamp
    time.textContent = new Date(timestamp).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
    return time
  }

  /** Enables the controls that change the board only while the page is connected and loaded. */
  function updateControls () {
    const ready = elements.connectionState.dataset.state === 'connected' && board.loaded
    elements.submit.disabled = adding || !ready
    const last = board.notes.length - 1
    for (const item of elements.notes.children) {
      const index = indexOfNote(item.dataset.noteId)
      for (const button of item.querySelectorAll('button')) {
        const action = button.dataset.action
        const atEdge = (action === 'up' && index === 0) || (action === 'down' && index === last)
        button.disabled = !ready || atEdge
      }
    }
  }

  function showPresence (presence) {
    if (presence.boardId !== boardId) return
    // An instance that did not reply in time may have more members, so the count is a minimum.
    elements.presenceCount.textContent = presence.complete ? String(presence.connections) : `${presence.connections}+`
  }

  function showConnectionInfo (info) {
    elements.instanceId.textContent = info?.instanceId ?? 'unknown'
    elements.connectionId.textContent = info?.connectionId ?? 'none'
  }

  function setConnectionState (state, label) {
    elements.connectionState.dataset.state = state
    elements.connectionState.textContent = label
    document.body.dataset.connectionState = state
    updateControls()
  }

  /** Tells screen reader users what changed, in a visually hidden live region. */
  function announce (method, change) {
    const messages = {
      NoteAdded: () => `Note added: ${change.note.text}`,
      NoteEdited: () => `Note edited: ${change.note.text}`,
      NoteMoved: () => `Note moved to position ${change.index + 1}.`,
      NoteDeleted: () => 'Note deleted.'
    }
    elements.announcer.textContent = messages[method]()
  }

  function indexOfNote (noteId) {
    return board.notes.findIndex((note) => note.id === noteId)
  }

  function showNotesError (message) {
    showError(elements.notesError, message)
  }

  function showError (element, message) {
    element.textContent = message
    element.hidden = false
  }

  function hideError (element) {
    element.textContent = ''
    element.hidden = true
  }

  function isHubException (err) {
    return err instanceof Error && err.message.includes('HubException: ')
  }

  /** Returns the text after "HubException: " in a hub error, which the server wrote for users. */
  function describeError (err) {
    const message = err instanceof Error ? err.message : String(err)
    const marker = 'HubException: '
    const index = message.indexOf(marker)
    return index === -1 ? message : message.slice(index + marker.length)
  }
})()
