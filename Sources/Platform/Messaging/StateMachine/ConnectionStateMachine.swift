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
/// Events that make no sense in the current state are programming errors and stop the process
/// (`preconditionFailure`), as in swift-nio's state machines.
///
/// Growing it: several broker URLs tried in turn would be a node index in `connecting`/`backingOff`; quorum queues a
/// richer ``SetupStep/declare(queue:)``; a 406 on declare a case of ``declarationFailed(requestID:_:)``;
/// `connection.blocked` (a broker alarm) is reported once per change, and the role decides what it means (the
/// publisher stops sending until `connection.unblocked`).
struct ConnectionStateMachine<Role: ConnectionRole> {
    enum State {
        /// `run()` has not started the thread yet.
        case idle
        /// The driver is opening a connection and running `steps`; `failedAttempts` attempts failed before this one.
        case connecting(steps: [SetupStep], failedAttempts: Int)
        /// Serving on connection number `generation`.
        case connected(generation: UInt64)
        /// Waiting before the next attempt; `failedAttempts` attempts failed since the last connection.
        case backingOff(failedAttempts: Int)
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
    /// Declare requests waiting for a connection.
    private var waitingDeclarations: [(requestID: UInt64, queues: [String])] = []
    /// Declare requests handed to the driver on the live connection.
    private var declarationsInFlight: [UInt64] = []
    /// Connections made so far; deliveries carry it so that tags from an earlier connection are recognised.
    private var generation: UInt64 = 0
    private let backoff: Backoff
    private let jitter: () -> Double

    /// Creates a machine for `role` that declares `queues` on every connect and waits between attempts as `backoff`
    /// says; `jitter` gives the random factor of each delay (see ``Backoff/delay(attempt:jitter:)``).
    init(
        role: Role, declaring queues: [String], backoff: Backoff, shutdownTimeout: Duration = .seconds(10),
        jitter: @escaping () -> Double = Backoff.randomJitter
    ) {
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
        return connect(failedAttempts: 0)
    }

    /// The connection asked for by ``ConnectionAction/connect(steps:)`` is open and set up.
    mutating func connected(consumerTag: String?) -> [ConnectionAction] {
        guard case .connecting(let steps, _) = state else { preconditionFailure("connected in state \(state)") }
        let isReconnect = generation > 0
        generation += 1
        state = .connected(generation: generation)
        var actions: [ConnectionAction] = [.reportConnected(generation: generation, isReconnect: isReconnect)]
        // Requests that waited for this connection were declared by its setup, unless they came in since.
        for request in waitingDeclarations {
            if request.queues.allSatisfy({ steps.contains(.declare(queue: $0)) }) {
                actions.append(.completeDeclaration(requestID: request.requestID))
            } else {
                declarationsInFlight.append(request.requestID)
                actions.append(.declare(requestID: request.requestID, queues: request.queues))
            }
        }
        waitingDeclarations.removeAll()
        return actions + role.channelOpened(generation: generation, consumerTag: consumerTag)
    }

    /// The attempt asked for by ``ConnectionAction/connect(steps:)`` failed.
    mutating func connectFailed(_ error: MessagingError) -> [ConnectionAction] {
        guard case .connecting(_, let failedAttempts) = state else {
            preconditionFailure("connectFailed in state \(state)")
        }
        let attempt = failedAttempts + 1
        state = .backingOff(failedAttempts: attempt)
        return [
            .reportConnectFailed(attempt: attempt, error),
            .backOff(backoff.delay(attempt: attempt, jitter: jitter())),
        ]
    }

    /// The delay asked for by ``ConnectionAction/backOff(_:)`` is over.
    mutating func backoffElapsed() -> [ConnectionAction] {
        guard case .backingOff(let failedAttempts) = state else {
            preconditionFailure("backoffElapsed in state \(state)")
        }
        return connect(failedAttempts: failedAttempts)
    }

    private mutating func connect(failedAttempts: Int) -> [ConnectionAction] {
        let steps = queues.map { SetupStep.declare(queue: $0) } + role.setupSteps
        state = .connecting(steps: steps, failedAttempts: failedAttempts)
        return [.connect(steps: steps)]
    }

    /// The connection failed: a library error, a missed heartbeat, the socket closed. After a close it is moot.
    mutating func connectionLost(_ error: MessagingError) -> [ConnectionAction] {
        switch state {
        case .connected:
            state = .backingOff(failedAttempts: 0)
            return [.abandonConnection(error, reconnecting: true)] + unblock("the connection was lost")
                + failDeclarationsInFlight(error) + role.channelLost(error)
                + [.backOff(backoff.delay(attempt: 0, jitter: jitter()))]
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
                return [.failDeclaration(requestID: requestID, MessagingError(.notConnected, "not connected"))]
            }
            return [.countMessages(requestID: requestID, queue: queue)]
        case .declare(let requestID, let queues):
            for queue in queues where !self.queues.contains(queue) { self.queues.append(queue) }
            switch state {
            case .connected:
                declarationsInFlight.append(requestID)
                return [.declare(requestID: requestID, queues: queues)]
            case .closing:
                return [.failDeclaration(requestID: requestID, Self.shuttingDown)]
            default:
                waitingDeclarations.append((requestID, queues))
                return []
            }
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
        default:
            do {
                return afterRoleEvent(try role.frameRead(frame))
            } catch {
                return connectionLost(error)
            }
        }
    }

    /// The queues of declare request `requestID` were declared.
    mutating func queuesDeclared(requestID: UInt64) -> [ConnectionAction] {
        guard let index = declarationsInFlight.firstIndex(of: requestID) else {
            preconditionFailure("queuesDeclared for request \(requestID), which is not in flight")
        }
        declarationsInFlight.remove(at: index)
        return [.completeDeclaration(requestID: requestID)]
    }

    /// Declaring the queues of request `requestID` failed; the broker closed the channel, so the connection is lost.
    mutating func declarationFailed(requestID: UInt64, _ error: MessagingError) -> [ConnectionAction] {
        guard let index = declarationsInFlight.firstIndex(of: requestID) else {
            preconditionFailure("declarationFailed for request \(requestID), which is not in flight")
        }
        declarationsInFlight.remove(at: index)
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

    // MARK: - Shutting down

    /// Graceful shutdown or cancellation of `run()`.
    mutating func shutdownAsked() -> [ConnectionAction] {
        switch state {
        case .idle, .backingOff:
            let declarations = failAllDeclarations(Self.shuttingDown)
            return declarations + role.shutdownAsked() + stop(closing: false)
        case .connected(let generation):
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

    private mutating func failDeclarationsInFlight(_ error: MessagingError) -> [ConnectionAction] {
        defer { declarationsInFlight.removeAll() }
        return declarationsInFlight.map { .failDeclaration(requestID: $0, error) }
    }

    private mutating func failAllDeclarations(_ error: MessagingError) -> [ConnectionAction] {
        let waiting = waitingDeclarations.map { ConnectionAction.failDeclaration(requestID: $0.requestID, error) }
        waitingDeclarations.removeAll()
        return failDeclarationsInFlight(error) + waiting
    }

    private func requireChannel(_ event: String) {
        switch state {
        case .connected, .closing: break
        default: preconditionFailure("\(event) in state \(state)")
        }
    }
}
