import Foundation
import Logging
import Metrics
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The thin loop on a connection's own thread: it feeds a ``ConnectionStateMachine`` what happens (commands from the
/// ``ConnectionMailbox``, frames from the ``AMQPConnection``, timers) and performs the actions it returns. All
/// decisions are the machine's; the driver only does the I/O (rabbitmq-c calls, `poll()`), logs and answers callers.
///
/// rabbitmq-c is blocking and not thread-safe, so one thread owns the connection: it sleeps in `poll()` on the socket
/// and the mailbox's wake-up pipe, so an idle connection costs no CPU, and wakes at half the heartbeat interval,
/// because rabbitmq-c sends heartbeats only while reading. Created, used and dropped on that thread.
final class ConnectionDriver<Role: ConnectionRole> {
    /// The result of performing one action: more actions, or the connection failed and earlier actions that needed
    /// it mean nothing any more.
    private enum Outcome {
        case next([ConnectionAction])
        case connectionFailed([ConnectionAction])
    }

    /// Frames handled before the thread looks at commands again, so a busy socket cannot starve acks.
    private static var framesPerTurn: Int { 256 }

    private var machine: ConnectionStateMachine<Role>
    private let mailbox: ConnectionMailbox<Role.Command>
    private let configuration: BrokerConfiguration
    private let logger: Logger
    /// `amqp_reconnects_total{role}`: connections made again after one was lost.
    private let reconnects: Counter
    /// `amqp_blocked{role}`: 1 while the broker blocks this connection (`connection.blocked`), else 0.
    private let blockedGauge: Gauge
    /// Where a consumer's deliveries go, one element per turn of reading frames.
    private let deliveries: AsyncStream<[Delivery]>.Continuation?
    /// Deliveries read in this turn, handed over together when it ends (one wake-up of the reader, not one each).
    private var pendingDeliveries: [Delivery] = []

    private var connection: AMQPConnection?
    /// The node of the last connection attempt (0-based), named in the log lines.
    private var node = 0
    /// Why the connection stopped for good, thrown by `run()`.
    private var stopError: MessagingError?
    /// How long `poll()` may sleep while connected: half the heartbeat interval.
    private var pollInterval = Duration.seconds(30)
    private var backoffDeadline: ContinuousClock.Instant?
    private var drainDeadline: ContinuousClock.Instant?
    /// When the connection must be closed by, once shutdown was asked (`shutdownTimeout` later).
    private var shutdownDeadline: ContinuousClock.Instant?
    private var shutdownReported = false
    private var closedPolitely = false
    private var finished = false

    private init(
        machine: ConnectionStateMachine<Role>, mailbox: ConnectionMailbox<Role.Command>,
        configuration: BrokerConfiguration, logger: Logger, deliveries: AsyncStream<[Delivery]>.Continuation?
    ) {
        self.machine = machine
        self.mailbox = mailbox
        self.configuration = configuration
        self.logger = logger
        self.deliveries = deliveries
        reconnects = Counter(label: "amqp_reconnects_total", dimensions: [("role", Role.name)])
        blockedGauge = Gauge(label: "amqp_blocked", dimensions: [("role", Role.name)])
        blockedGauge.record(0)
    }

    /// Runs one connection for `role` on a new thread, declaring `queues` on every connect, and returns when the
    /// thread has finished: after cancellation or graceful shutdown, once everything is flushed and closed.
    static func run(
        role: Role, declaring queues: [String], mailbox: ConnectionMailbox<Role.Command>,
        configuration: BrokerConfiguration, logger: Logger, deliveries: AsyncStream<[Delivery]>.Continuation? = nil
    ) async throws {
        guard mailbox.markStarted() else { throw MessagingError(.closed, "run() may be called only once") }
        var logger = logger
        logger[metadataKey: "amqp.role"] = "\(Role.name)"
        if !configuration.connectionName.isEmpty {
            logger[metadataKey: "amqp.connection"] = "\(configuration.connectionName)"
        }
        let backoff = Backoff(
            initial: configuration.reconnectDelay.lowerBound, maximum: configuration.reconnectDelay.upperBound)
        let failure = await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (exit: CheckedContinuation<MessagingError?, Never>) in
                    let thread = Thread { [logger] in
                        nameCurrentThread("amqp-\(Role.name)")
                        let machine = ConnectionStateMachine(
                            role: role, declaring: queues, nodes: configuration.nodes.count, backoff: backoff,
                            shutdownTimeout: configuration.shutdownTimeout)
                        let driver = ConnectionDriver(
                            machine: machine, mailbox: mailbox, configuration: configuration, logger: logger,
                            deliveries: deliveries)
                        driver.main()
                        mailbox.finish()
                        exit.resume(returning: driver.stopError)
                    }
                    // rabbitmq-c decodes nested header tables and arrays recursively, bounded only by the frame: a header
                    // of ~26,000 nested arrays in 128 KiB. Room for that, whatever the platform's default thread stack.
                    thread.stackSize = Self.threadStackSize
                    thread.start()
                }
            } onCancel: {
                mailbox.requestShutdown()
                mailbox.armShutdownDeadline(configuration.shutdownTimeout)
            }
        } onGracefulShutdown: {
            mailbox.requestShutdown()
            mailbox.armShutdownDeadline(configuration.shutdownTimeout)
        }
        if let failure { throw failure }
    }

    // MARK: - The loop

    private func main() {
        takeCommands()
        if !finished { perform(machine.start()) }
        while !finished {
            // The clock first: a deadline (the publisher's confirm deadline) may have passed.
            let expired = machine.timePassed(now: .now)
            if !expired.isEmpty {
                perform(expired)
                continue
            }
            takeCommands()
            if finished { break }
            if fireTimers() { continue }
            if connection != nil {
                if readFrames() { continue }
                if finished { break }
                // rabbitmq-c may hold bytes it read already, which `poll()` would not report.
                if connection?.hasBufferedInput == true { continue }
            }
            waitForInput()
        }
        if !closedPolitely && stopError == nil {
            logger.info("AMQP \(Role.name) for \(configuration.redactedURL) stopped")
        }
    }

    private func takeCommands() {
        let (commands, shutdownRequested) = mailbox.take()
        for command in commands {
            if finished { return }
            perform(machine.commandReceived(command))
        }
        if shutdownRequested && !shutdownReported && !finished {
            shutdownReported = true
            shutdownDeadline = .now + configuration.shutdownTimeout
            perform(machine.shutdownAsked())
        }
    }

    /// Reports a timer that has fired; returns whether one did.
    private func fireTimers() -> Bool {
        let now = ContinuousClock.now
        if let deadline = backoffDeadline, deadline <= now {
            backoffDeadline = nil
            perform(machine.backoffElapsed())
            return true
        }
        if let deadline = drainDeadline, deadline <= now {
            drainDeadline = nil
            perform(machine.drainDeadlinePassed())
            return true
        }
        return false
    }

    /// Reads up to ``framesPerTurn`` frames that are complete without waiting; returns whether more may be ready.
    private func readFrames() -> Bool {
        defer { handOverDeliveries() }
        for _ in 0..<Self.framesPerTurn {
            guard let connection, !finished else { return false }
            let frame: IncomingFrame?
            do throws(MessagingError) {
                frame = try connection.nextFrame()
            } catch {
                perform(machine.connectionLost(error))
                return false
            }
            guard let frame else { return false }
            perform(machine.frameRead(frame))
        }
        return true
    }

    /// Hands the deliveries read in this turn to the reader, as one batch.
    private func handOverDeliveries() {
        guard !pendingDeliveries.isEmpty else { return }
        deliveries?.yield(pendingDeliveries)
        pendingDeliveries.removeAll(keepingCapacity: true)
    }

    private func waitForInput() {
        let now = ContinuousClock.now
        var timeout = connection == nil ? Duration.seconds(30) : pollInterval
        if let deadline = backoffDeadline { timeout = min(timeout, deadline - now) }
        if let deadline = drainDeadline { timeout = min(timeout, deadline - now) }
        if let deadline = machine.nextDeadline { timeout = min(timeout, deadline - now) }
        mailbox.wakeup.wait(socket: connection?.socketDescriptor, timeout: timeout)
    }

    // MARK: - Actions

    /// Performs `actions` in order, and those that their outcomes bring, then publishes whether the connection serves.
    private func perform(_ actions: [ConnectionAction]) {
        var queue = FIFO(actions)
        while let action = queue.popFirst() {
            switch execute(action) {
            case .next(let more):
                queue.append(contentsOf: more)
            case .connectionFailed(let more):
                _ = queue.removeAll(where: \.needsConnection)
                queue.append(contentsOf: more)
            }
        }
        mailbox.setConnected(machine.isConnected)
    }

    private func execute(_ action: ConnectionAction) -> Outcome {
        switch action {
        case .connect(let steps, let node):
            self.node = node
            return .next(connect(steps))
        case .reportConnected(let generation, let isReconnect, let node):
            if isReconnect { reconnects.increment() }
            logger.info(
                "AMQP \(isReconnect ? "reconnected" : "connected") to \(nodeURL(node))",
                metadata: [
                    "amqp.heartbeat": "\(connection?.heartbeatSeconds ?? 0)s", "amqp.generation": "\(generation)",
                ])
        case .reportConnectFailed(let attempt, let node, let error):
            // A queue conflict is the one line `stopWithError` logs next.
            if error.code != .queueConflict {
                logger.warning("AMQP connection to \(nodeURL(node)) failed (attempt \(attempt)): \(error)")
            }
        case .stopWithError(let error):
            stopError = error
            // `run()` throws it; the process that runs this connection says it once (ServiceRunner: one line).
            logger.debug("AMQP \(Role.name) stopping: \(error.detail)")
        case .backOff(let delay):
            backoffDeadline = .now + delay
        case .abandonConnection(let error, let reconnecting):
            dropConnection()
            logger.warning(
                "AMQP connection to \(nodeURL(node)) lost: \(error)\(reconnecting ? "; reconnecting" : "")")
        case .replyCloseOk(let isConnection):
            openConnection.replyCloseOk(isConnection: isConnection)
        case .startDrainTimer(let timeout):
            drainDeadline = .now + timeout
        case .closeConnection:
            if machine.isBlocked {
                // The broker reads nothing from a blocked connection, so it would never answer `connection.close`.
                dropConnection()
                logger.info("AMQP connection to \(nodeURL(node)) dropped: the broker blocks it")
            } else {
                let now = ContinuousClock.now
                let remaining = (shutdownDeadline ?? now + configuration.shutdownTimeout / 2) - now
                connection?.sendClose(timeout: max(remaining, .milliseconds(100)))
                dropConnection()
                logger.info("AMQP connection to \(nodeURL(node)) closed")
            }
            closedPolitely = true
        case .reportBlocked(let reason):
            mailbox.setBlocked(true)
            blockedGauge.record(1)
            BrokerFlowControl.connectionBlocked()
            logger.warning(
                "AMQP broker blocked this connection (connection.blocked): nothing is published until it unblocks it",
                metadata: ["amqp.blocked_reason": "\(reason)"])
        case .reportUnblocked(let cause):
            mailbox.setBlocked(false)
            blockedGauge.record(0)
            BrokerFlowControl.connectionUnblocked()
            logger.notice("AMQP connection no longer blocked: \(cause)")
        case .finish:
            if mailbox.isBlocked {
                mailbox.setBlocked(false)
                blockedGauge.record(0)
                BrokerFlowControl.connectionUnblocked()
            }
            finished = true
            backoffDeadline = nil
            drainDeadline = nil
        case .log(let level, let message):
            logger.log(level: level, "\(message)")

        case .declare(let requestID, let queues):
            do throws(MessagingError) {
                for queue in queues { try openConnection.declareQueue(queue, type: configuration.queueType) }
            } catch {
                return .connectionFailed(machine.declarationFailed(requestID: requestID, error))
            }
            return .next(machine.queuesDeclared(requestID: requestID))
        case .completeDeclaration(let requestID), .completePublish(let requestID):
            mailbox.complete(requestID)
        case .countMessages(let requestID, let queue):
            let ready: Int
            do throws(MessagingError) {
                ready = try openConnection.declareQueue(queue, type: configuration.queueType)
            } catch {
                mailbox.fail(requestID, error)
                return .connectionFailed(machine.connectionLost(error))
            }
            mailbox.answerCount(requestID, ready)
        case .failDeclaration(let requestID, let error), .failCount(let requestID, let error),
            .failPublish(let requestID, let error):
            mailbox.fail(requestID, error)
        case .cancelPublish(let requestID):
            mailbox.fail(requestID, CancellationError())

        case .sendPublish(let message):
            // The send is dated by the clock; one read now, not before a connect or an RPC that took a while.
            let expired = machine.timePassed(now: .now)
            if !expired.isEmpty { return .connectionFailed(expired) }
            let refusal: MessagingError?
            do throws(MessagingError) {
                refusal = try openConnection.publish(message)
            } catch {
                return .connectionFailed(machine.connectionLost(error))
            }
            return .next(refusal.map { machine.publishRefused($0) } ?? machine.publishSent())

        case .ack(let tag, let multiple):
            return io { connection throws(MessagingError) in try connection.ack(deliveryTag: tag, multiple: multiple) }
        case .reject(let tag, let requeue):
            return io { connection throws(MessagingError) in try connection.reject(deliveryTag: tag, requeue: requeue) }
        case .cancelConsumer(let consumerTag):
            return io { connection throws(MessagingError) in try connection.sendCancel(consumerTag: consumerTag) }
        case .yieldDelivery(let delivery):
            pendingDeliveries.append(delivery)
        case .finishDeliveries:
            handOverDeliveries()
            deliveries?.finish()
        }
        return .next([])
    }

    /// Opens a connection and sets it up; reports the outcome to the machine.
    private func connect(_ steps: [SetupStep]) -> [ConnectionAction] {
        do throws(MessagingError) {
            let opened = try AMQPConnection.open(configuration.selectingNode(node))
            var consumerTag: String?
            for step in steps {
                switch step {
                case .declare(let queue): try opened.declareQueue(queue, type: configuration.queueType)
                case .selectConfirms: try opened.selectConfirms()
                case .setPrefetch(let count): try opened.setPrefetch(count)
                case .consume(let queue): consumerTag = try opened.consume(queue: queue)
                }
            }
            connection = opened
            mailbox.setFrameMax(opened.negotiatedFrameMax)
            mailbox.registerSocket(opened.socketDescriptor)
            pollInterval =
                opened.heartbeatSeconds > 0 ? .milliseconds(Int(opened.heartbeatSeconds) * 500) : .seconds(30)
            return machine.connected(consumerTag: consumerTag)
        } catch {
            return machine.connectFailed(error)
        }
    }

    /// Closes the socket and frees the connection, out of reach of the shutdown deadline's cut.
    private func dropConnection() {
        guard let dropped = connection else { return }
        connection = nil
        mailbox.unregisterSocket { dropped.abandon() }
    }

    /// Node number `index`'s URL, password masked, for a log line.
    private func nodeURL(_ index: Int) -> String {
        configuration.redactedURL(node: index)
    }

    /// Performs a call on the open connection whose only outcome that matters is failure.
    private func io(_ call: (AMQPConnection) throws(MessagingError) -> Void) -> Outcome {
        do throws(MessagingError) {
            try call(openConnection)
        } catch {
            return .connectionFailed(machine.connectionLost(error))
        }
        return .next([])
    }

    /// The connection, which the machine asks for only while one is open.
    private var openConnection: AMQPConnection {
        guard let connection else { preconditionFailure("the state machine asked for I/O without a connection") }
        return connection
    }
}

@available(*, unavailable)
extension ConnectionDriver: Sendable {}

/// Names the calling OS thread (shown by `top -H`, `ps -L` and debuggers). Foundation's `Thread.name` does not on
/// Linux, and `pthread_setname_np` is not visible to Swift there, so this writes `/proc/thread-self/comm`.
extension ConnectionDriver {
    /// The stack of a connection's thread: virtual memory, of which only what a decode touches is ever used.
    static var threadStackSize: Int { 64 << 20 }
}

private func nameCurrentThread(_ name: String) {
    let descriptor = open("/proc/thread-self/comm", O_WRONLY)
    guard descriptor >= 0 else { return }
    defer { close(descriptor) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
}
