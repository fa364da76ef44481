import Logging

/// The life cycle of one AMQP connection, as a pure state machine: events in, ``ConnectionAction``s out.
///
/// The ``ConnectionDriver`` feeds it everything that happens (a command from a caller, a frame, the outcome of a
/// connect or of a send, a timer) and performs the actions it returns; the machine itself does no I/O, so it is
/// tested without a broker. What is specific to publishing or consuming lives in its `Role`
/// (``PublisherStateMachine``, ``ConsumerStateMachine``); the machine owns what both share: connecting, backing off
/// and reconnecting, queue declarations, the connection generation that makes delivery tags of an earlier connection
/// harmless, broker-initiated closes, and the shutdown handshake.
///
/// ```
///   idle ──start──▶ connecting ──connected──▶ connected ──shutdownAsked──▶ closing ──drained / deadline──▶ closed
///                     ▲    │                     │                           │
///                     │    connectFailed         connectionLost              connectionLost ──────────────▶ closed
///     backoffElapsed  │    ▼                     ▼
///                   backingOff ◀─────────────────┘        (idle and backingOff close at once on shutdownAsked)
/// ```
///
/// Several broker nodes are tried in turn: each attempt names its node. A connection that is lost, or an attempt that
/// fails, moves on to the next node at once; only when every node has failed in a row does the machine back off
/// (the backoff's attempt number counts such rounds). With one node that is the plain backoff.
///
/// A queue that exists with another type (``MessagingError/Code/queueConflict``) cannot be fixed by retrying: met
/// while setting up a connection, it stops the machine (``ConnectionAction/stopWithError(_:)``); met by a declaration
/// asked at run time (declared once connected, also when asked while disconnected), it fails that declaration,
/// whose queues are then no longer declared on reconnect.
///
/// Events that make no sense in the current state are programming errors and stop the process
/// (`preconditionFailure`), as in swift-nio's state machines.
///
/// Growing it: `connection.blocked` (a broker alarm) is reported once per change, and the role decides what it
/// means (the publisher stops sending until `connection.unblocked`).
struct ConnectionStateMachine<Role: ConnectionRole> {
    enum State {
        /// `run()` has not started the thread yet.
        case idle
        /// The driver is opening a connection to node number `node` (0-based) and running `steps`;
        /// `failedAttempts` attempts failed before this one.
        case connecting(steps: [SetupStep], node: Int, failedAttempts: Int)
        /// Serving on connection number `generation`, to node number `node`.
        case connected(generation: UInt64, node: Int)
        /// Waiting before the next attempt, to node number `next`; `failedAttempts` attempts failed since the last
        /// connection.
        case backingOff(failedAttempts: Int, next: Int)
        /// Shutdown asked while connected: the role finishes its work on connection `generation`.
        case closing(generation: UInt64)
        /// Finished; no more events.
        case closed
    }

    /// How long a shutting-down connection waits for outstanding confirms or the consumer's `cancel-ok`: half of its
    /// shutdown timeout, so that the close handshake fits in the other half.
    let drainTimeout: Duration

    private(set) var state = State.idle
    /// The broker sent `connection.blocked` on the current connection and no `connection.unblocked` since.
    private(set) var isBlocked = false
    private var role: Role
    /// Queues declared on every connect: those given at creation, then those added by declare requests.
    private var queues: [String]
    /// Declare requests waiting for a connection, with the queues each added to ``queues``.
    private var waitingDeclarations: [(requestID: UInt64, queues: [String], added: [String])] = []
    /// Declare requests handed to the driver on the live connection, with the queues each added to ``queues``.
    private var declarationsInFlight: [(requestID: UInt64, added: [String])] = []
    /// Connections made so far; deliveries carry it so that tags from an earlier connection are recognised.
    private var generation: UInt64 = 0
    /// How many broker nodes there are to try.
    private let nodes: Int
    private let backoff: Backoff
    private let jitter: () -> Double

    /// Creates a machine for `role` that declares `queues` on every connect, tries `nodes` broker nodes in turn
    /// (from the first) and waits between rounds of attempts as `backoff` says; `jitter` gives the random factor of
    /// each delay (see ``Backoff/delay(attempt:jitter:)``).
    init(
        role: Role, declaring queues: [String], nodes: Int = 1, backoff: Backoff,
        shutdownTimeout: Duration = .seconds(10),
        jitter: @escaping () -> Double = Backoff.randomJitter
    ) {
        precondition(nodes >= 1, "a connection needs at least one broker node")
        self.nodes = nodes
        self.role = role
        drainTimeout = shutdownTimeout / 2
        var unique: [String] = []
        for queue in queues where !unique.contains(queue) { unique.append(queue) }
        self.queues = unique
        self.backoff = backoff
        self.jitter = jitter
    }

    /// Whether the connection is up and serving (not while shutting down).
    var isConnected: Bool {
        if case .connected = state { true } else { false }
    }

    // MARK: - Connecting

    /// The thread started.
    mutating func start() -> [ConnectionAction] {
        guard case .idle = state else { preconditionFailure("start() in state \(state)") }
        return connect(node: 0, failedAttempts: 0)
    }

    /// The connection asked for by ``ConnectionAction/connect(steps:)`` is open and set up.
    mutating func connected(consumerTag: String?) -> [ConnectionAction] {
        guard case .connecting(let steps, let node, _) = state else {
            preconditionFailure("connected in state \(state)")
        }
        let isReconnect = generation > 0
        generation += 1
        state = .connected(generation: generation, node: node)
        var actions: [ConnectionAction] = [
            .reportConnected(generation: generation, isReconnect: isReconnect, node: node)
        ]
        // Requests that waited for this connection were declared by its setup, unless they came in since.
        for request in waitingDeclarations {
            if request.queues.allSatisfy({ steps.contains(.declare(queue: $0)) }) {
                actions.append(.completeDeclaration(requestID: request.requestID))
            } else {
                declarationsInFlight.append((request.requestID, request.added))
                actions.append(.declare(requestID: request.requestID, queues: request.queues))
            }
        }
        waitingDeclarations.removeAll()
        return actions + role.channelOpened(generation: generation, consumerTag: consumerTag)
    }

    /// The attempt asked for by ``ConnectionAction/connect(steps:node:)`` failed: the next node is tried at once,
    /// or after the backoff once every node failed in a row. A ``MessagingError/Code/queueConflict`` stops instead.
    mutating func connectFailed(_ error: MessagingError) -> [ConnectionAction] {
        guard case .connecting(_, let node, let failedAttempts) = state else {
            preconditionFailure("connectFailed in state \(state)")
        }
        let attempt = failedAttempts + 1
        let report = ConnectionAction.reportConnectFailed(attempt: attempt, node: node, error)
        if error.code == .queueConflict {
            return [report] + failAllDeclarations(error) + [.stopWithError(error)] + stop(closing: false)
        }
        let next = (node + 1) % nodes
        guard attempt % nodes == 0 else {
            return [report] + connect(node: next, failedAttempts: attempt)
        }
        state = .backingOff(failedAttempts: attempt, next: next)
        return [report, .backOff(backoff.delay(attempt: attempt / nodes, jitter: jitter()))]
    }

    /// The delay asked for by ``ConnectionAction/backOff(_:)`` is over.
    mutating func backoffElapsed() -> [ConnectionAction] {
        guard case .backingOff(let failedAttempts, let next) = state else {
            preconditionFailure("backoffElapsed in state \(state)")
        }
        return connect(node: next, failedAttempts: failedAttempts)
    }

    private mutating func connect(node: Int, failedAttempts: Int) -> [ConnectionAction] {
        // Queues that only declarations asked at run time want are declared once connected, as those requests: a
        // refusal then fails the request, not the connection.
        let requested = Set(waitingDeclarations.flatMap(\.added))
        let steps = queues.filter { !requested.contains($0) }.map { SetupStep.declare(queue: $0) } + role.setupSteps
        state = .connecting(steps: steps, node: node, failedAttempts: failedAttempts)
        return [.connect(steps: steps, node: node)]
    }

    /// The connection failed: a library error, a missed heartbeat, the socket closed. After a close it is moot.
    mutating func connectionLost(_ error: MessagingError) -> [ConnectionAction] {
        switch state {
        case .connected(_, let node):
            let lost: [ConnectionAction] =
                [.abandonConnection(error, reconnecting: true)] + unblock("the connection was lost")
                + failDeclarationsInFlight(error) + role.channelLost(error)
            guard nodes > 1 else {
                state = .backingOff(failedAttempts: 0, next: node)
                return lost + [.backOff(backoff.delay(attempt: 0, jitter: jitter()))]
            }
            // Another node is up, most likely: go there now rather than wait for this one.
            return lost + connect(node: (node + 1) % nodes, failedAttempts: 0)
        case .closing:
            return [.abandonConnection(error, reconnecting: false)] + unblock("the connection was lost")
                + failDeclarationsInFlight(error) + role.channelLost(error) + stop(closing: false)
        case .closed:
            return []
        case .idle, .connecting, .backingOff:
            preconditionFailure("connectionLost in state \(state)")
        }
    }

    // MARK: - Serving

    /// A caller's command, taken from the mailbox.
    mutating func commandReceived(_ command: ConnectionCommand<Role.Command>) -> [ConnectionAction] {
        switch state {
        case .idle, .backingOff, .connected, .closing:
            break
        case .connecting, .closed:
            preconditionFailure("command in state \(state)")
        }
        switch command {
        case .role(let command):
            return afterRoleEvent(role.commandReceived(command))
        case .cancel(let requestID):
            return afterRoleEvent(role.cancelAsked(requestID: requestID))
        case .count(let requestID, let queue):
            guard case .connected = state else {
                return [.failCount(requestID: requestID, MessagingError(.notConnected, "not connected"))]
            }
            return [.countMessages(requestID: requestID, queue: queue)]
        case .declare(let requestID, let queues):
            if case .closing = state { return [.failDeclaration(requestID: requestID, Self.shuttingDown)] }
            var added: [String] = []
            for queue in queues where !self.queues.contains(queue) {
                self.queues.append(queue)
                added.append(queue)
            }
            if case .connected = state {
                declarationsInFlight.append((requestID, added))
                return [.declare(requestID: requestID, queues: queues)]
            }
            waitingDeclarations.append((requestID, queues, added))
            return []
        }
    }

    /// The driver read a frame from the connection.
    mutating func frameRead(_ frame: IncomingFrame) -> [ConnectionAction] {
        switch state {
        case .connected, .closing:
            break
        case .idle, .connecting, .backingOff, .closed:
            preconditionFailure("frame read in state \(state)")
        }
        switch frame {
        case .close(let close):
            // 320 CONNECTION_FORCED is an operator or a broker shutdown; anything else is a bug or a misconfiguration
            // (such as 406 PRECONDITION_FAILED for a queue declared with other arguments).
            return [
                .replyCloseOk(isConnection: close.isConnection),
                .log(close.replyCode == 320 ? .warning : .error, close.description),
            ] + connectionLost(MessagingError(.brokerClosed, close.description))
        case .other(let description):
            return [.log(.debug, "ignoring \(description)")]
        case .blocked(let reason):
            guard !isBlocked else { return [] }
            isBlocked = true
            return [.reportBlocked(reason: reason)] + afterRoleEvent(role.flowControl(blocked: true))
        case .unblocked:
            guard isBlocked else { return [] }
            return unblock("the broker lifted its alarm") + afterRoleEvent(role.flowControl(blocked: false))
        case .deliver, .ack, .nack, .returned, .cancelledByBroker, .cancelOk:
            do {
                return afterRoleEvent(try role.frameRead(frame))
            } catch {
                return connectionLost(error)
            }
        }
    }

    /// The queues of declare request `requestID` were declared.
    mutating func queuesDeclared(requestID: UInt64) -> [ConnectionAction] {
        guard let index = declarationsInFlight.firstIndex(where: { $0.requestID == requestID }) else {
            preconditionFailure("queuesDeclared for request \(requestID), which is not in flight")
        }
        declarationsInFlight.remove(at: index)
        return [.completeDeclaration(requestID: requestID)]
    }

    /// Declaring the queues of request `requestID` failed; the broker closed the channel, so the connection is lost.
    /// The queues the request added are no longer declared on reconnect: its caller was told it failed, and a queue
    /// the broker refuses (such as one of another type) must not stop every later connection.
    mutating func declarationFailed(requestID: UInt64, _ error: MessagingError) -> [ConnectionAction] {
        guard let index = declarationsInFlight.firstIndex(where: { $0.requestID == requestID }) else {
            preconditionFailure("declarationFailed for request \(requestID), which is not in flight")
        }
        forget(declarationsInFlight.remove(at: index).added)
        return [.failDeclaration(requestID: requestID, error)] + connectionLost(error)
    }

    /// The message of the last ``ConnectionAction/sendPublish(_:)`` went on the wire.
    mutating func publishSent() -> [ConnectionAction] {
        requireChannel("publishSent")
        return afterRoleEvent(role.publishSent())
    }

    /// The message of the last ``ConnectionAction/sendPublish(_:)`` could not be encoded; nothing was sent.
    mutating func publishRefused(_ error: MessagingError) -> [ConnectionAction] {
        requireChannel("publishRefused")
        return afterRoleEvent(role.publishRefused(error))
    }

    /// The driver's clock reads `now`. A role deadline that passed on a serving connection (the publisher's confirm
    /// deadline) means the connection is lost: it is dropped and the next node tried, as after a socket error.
    mutating func timePassed(now: ContinuousClock.Instant) -> [ConnectionAction] {
        let expired = role.timePassed(now: now)
        guard let expired, case .connected = state else { return [] }
        return connectionLost(expired)
    }

    /// When the driver must report ``timePassed(now:)`` at the latest: the role's deadline on a serving connection.
    var nextDeadline: ContinuousClock.Instant? {
        guard case .connected = state else { return nil }
        return role.nextDeadline
    }

    // MARK: - Shutting down

    /// Graceful shutdown or cancellation of `run()`.
    mutating func shutdownAsked() -> [ConnectionAction] {
        switch state {
        case .idle, .backingOff:
            let declarations = failAllDeclarations(Self.shuttingDown)
            return declarations + role.shutdownAsked() + stop(closing: false)
        case .connected(let generation, _):
            state = .closing(generation: generation)
            let actions = failAllDeclarations(Self.shuttingDown) + role.shutdownAsked()
            if role.isDrained { return actions + stop(closing: true) }
            return actions + [.startDrainTimer(drainTimeout)]
        case .connecting, .closing, .closed:
            preconditionFailure("shutdownAsked in state \(state)")
        }
    }

    /// The timer of ``ConnectionAction/startDrainTimer(_:)`` fired while still closing.
    mutating func drainDeadlinePassed() -> [ConnectionAction] {
        guard case .closing = state else { preconditionFailure("drainDeadlinePassed in state \(state)") }
        return role.drainTimedOut() + stop(closing: true)
    }

    // MARK: - Helpers

    private static var shuttingDown: MessagingError { MessagingError(.closed, "the connection is shutting down") }

    /// A closing connection closes as soon as its role has drained.
    private mutating func afterRoleEvent(_ actions: [ConnectionAction]) -> [ConnectionAction] {
        guard case .closing = state, role.isDrained else { return actions }
        return actions + stop(closing: true)
    }

    /// Reports the end of a block, if the connection was blocked.
    private mutating func unblock(_ cause: String) -> [ConnectionAction] {
        guard isBlocked else { return [] }
        isBlocked = false
        return [.reportUnblocked(cause: cause)]
    }

    private mutating func stop(closing: Bool) -> [ConnectionAction] {
        state = .closed
        return (closing ? [.closeConnection] : []) + role.stop() + [.finish]
    }

    /// Fails the declarations on the lost connection; their callers retry if they want the queues.
    private mutating func failDeclarationsInFlight(_ error: MessagingError) -> [ConnectionAction] {
        defer { declarationsInFlight.removeAll() }
        for request in declarationsInFlight { forget(request.added) }
        return declarationsInFlight.map { .failDeclaration(requestID: $0.requestID, error) }
    }

    /// Stops declaring `added` on every connect.
    private mutating func forget(_ added: [String]) {
        queues.removeAll { added.contains($0) }
    }

    private mutating func failAllDeclarations(_ error: MessagingError) -> [ConnectionAction] {
        let waiting = waitingDeclarations.map { ConnectionAction.failDeclaration(requestID: $0.requestID, error) }
        waitingDeclarations.removeAll()
        return failDeclarationsInFlight(error) + waiting
    }

    private func requireChannel(_ event: String) {
        switch state {
        case .connected, .closing: break
        case .idle, .connecting, .backingOff, .closed: preconditionFailure("\(event) in state \(state)")
        }
    }
}
