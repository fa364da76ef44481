import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Metrics

/// The body of a ``ConnectionLoop``'s thread: created on that thread, used only there, and gone when it ends.
/// Owns the ``AMQPConnection`` and everything tied to it (confirm numbers, delivery tags).
final class ConnectionWorker {
    private enum Outcome {
        case shutdown
        case lost(MessagingError)
    }

    /// Frames handled before the thread looks at commands again, so a busy socket cannot starve acks.
    private static let framesPerTurn = 256
    /// How long a closing publisher waits for outstanding confirms.
    private static let confirmDrainTimeout = Duration.seconds(5)

    private let loop: ConnectionLoop
    private var logger: Logger { loop.logger }
    /// Counts successful connections; deliveries carry it so acks from an earlier connection are recognised.
    private var generation: UInt64 = 0
    private var failedAttempts = 0
    private var confirms = ConfirmTracker()
    /// The publish being sent now: some of its messages may still wait for room in the confirm window.
    private var sending: PublishBatch?
    private var consumerTag: String?

    init(loop: ConnectionLoop) {
        self.loop = loop
    }

    func main() {
        var reconnecting = false
        connecting: while !loop.takeWork().shutdownRequested {
            loop.transition(to: .connecting)
            let connection: AMQPConnection
            do {
                connection = try connect()
            } catch {
                failedAttempts += 1
                logger.warning(
                    "AMQP connection to \(loop.configuration.redactedURL) failed (attempt \(failedAttempts)): \(error)")
                loop.transition(to: .backingOff)
                guard backOff() else { break connecting }
                continue
            }
            loop.transition(to: .connected)
            if reconnecting { loop.reconnects.increment() }
            logger.info(
                "AMQP \(reconnecting ? "reconnected" : "connected") to \(loop.configuration.redactedURL)",
                metadata: ["amqp.heartbeat": "\(connection.heartbeatSeconds)s", "amqp.generation": "\(generation)"])
            failedAttempts = 0

            switch serve(connection) {
            case .shutdown:
                loop.transition(to: .closing)
                closeGracefully(connection)
                loop.finishRole()
                loop.finish()
                logger.info("AMQP connection to \(loop.configuration.redactedURL) closed")
                return
            case .lost(let error):
                connection.abandon()
                dropConnectionState(error: MessagingError(.connectionLost, "connection lost: \(error)"))
                logger.warning("AMQP connection to \(loop.configuration.redactedURL) lost: \(error); reconnecting")
                reconnecting = true
                loop.transition(to: .backingOff)
                guard backOff() else { break connecting }
            }
        }
        loop.transition(to: .closing)
        loop.finishRole()
        loop.finish()
        logger.info("AMQP \(loop.role.name) for \(loop.configuration.redactedURL) stopped")
    }

    // MARK: - Connecting

    private func connect() throws(MessagingError) -> AMQPConnection {
        let connection = try AMQPConnection.open(loop.configuration)
        generation += 1
        confirms = ConfirmTracker()
        var queues = loop.queuesToDeclare
        if case .consumer(let queue, _, _) = loop.role, !queues.contains(queue) { queues.insert(queue, at: 0) }
        for queue in queues { try connection.declareQueue(queue) }
        switch loop.role {
        case .publisher:
            try connection.selectConfirms()
        case .consumer(let queue, let prefetch, _):
            try connection.setPrefetch(prefetch)
            consumerTag = try connection.consume(queue: queue)
        }
        return connection
    }

    /// Waits the next backoff delay (exponential with jitter), waking early only to shut down.
    /// Returns `false` if shutdown was requested.
    private func backOff() -> Bool {
        let bounds = loop.configuration.reconnectDelay
        let backoff = Backoff(initial: bounds.lowerBound, maximum: bounds.upperBound)
        let deadline = ContinuousClock.now + backoff.delay(attempt: failedAttempts)
        while true {
            let work = loop.takeWork()
            if !work.settlements.isEmpty {
                logger.debug("dropping \(work.settlements.count) acks: their connection is gone")
            }
            if work.shutdownRequested { return false }
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return true }
            waitForInput(socket: nil, timeout: remaining)
        }
    }

    // MARK: - Serving

    private func serve(_ connection: AMQPConnection) -> Outcome {
        var drainDeadline: ContinuousClock.Instant?
        let pollInterval =
            connection.heartbeatSeconds > 0
            ? Duration.milliseconds(Int(connection.heartbeatSeconds) * 500) : Duration.seconds(30)
        while true {
            let work = loop.takeWork()
            var timeout = pollInterval
            do {
                for (tag, generation, settlement) in work.settlements {
                    try settle(tag: tag, generation: generation, settlement, on: connection)
                }
                try declareRequested(on: connection)
                if work.shutdownRequested {
                    guard case .publisher = loop.role else { return .shutdown }
                    let deadline = drainDeadline ?? ContinuousClock.now + Self.confirmDrainTimeout
                    drainDeadline = deadline
                    if (confirms.isEmpty && sending == nil) || ContinuousClock.now >= deadline { return .shutdown }
                    timeout = min(timeout, deadline - ContinuousClock.now)
                }
                if case .publisher(let window) = loop.role {
                    try sendPublishes(on: connection, window: window, takeNew: !work.shutdownRequested)
                }
                if try readFrames(from: connection) { continue }
            } catch {
                return .lost(error)
            }
            if connection.hasBufferedInput { continue }
            waitForInput(socket: connection.socketDescriptor, timeout: timeout)
        }
    }

    /// Declares queues asked for by ``ConnectionLoop/declare(_:)`` (a synchronous RPC; confirms that arrive
    /// meanwhile are queued by rabbitmq-c and read afterwards).
    private func declareRequested(on connection: AMQPConnection) throws(MessagingError) {
        var requests = loop.takeDeclarations()[...]
        while let request = requests.popFirst() {
            do {
                for queue in request.queues { try connection.declareQueue(queue) }
                request.continuation.resume()
            } catch {
                request.continuation.resume(throwing: error)
                for rest in requests { rest.continuation.resume(throwing: error) }
                throw error
            }
        }
    }

    /// Sleeps in `poll()` until the socket is readable, a caller wakes the thread, or `timeout` passes.
    private func waitForInput(socket: Int32?, timeout: Duration) {
        var descriptors = [pollfd(fd: loop.wakeup.readDescriptor, events: Int16(POLLIN), revents: 0)]
        if let socket { descriptors.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0)) }
        let milliseconds = Int32(clamping: max(0, timeout.components.seconds * 1000 + timeout.components.attoseconds
            / 1_000_000_000_000_000))
        let result = poll(&descriptors, nfds_t(descriptors.count), milliseconds)
        if result > 0 && descriptors[0].revents != 0 { loop.wakeup.drain() }
    }

    /// Handles up to ``framesPerTurn`` frames that can be read without waiting; returns whether more may be ready.
    private func readFrames(from connection: AMQPConnection) throws(MessagingError) -> Bool {
        for _ in 0..<Self.framesPerTurn {
            guard let frame = try connection.nextFrame() else { return false }
            try handle(frame, on: connection)
        }
        return true
    }

    private func handle(_ frame: IncomingFrame, on connection: AMQPConnection) throws(MessagingError) {
        switch frame {
        case .deliver(let tag, let redelivered):
            let content = try connection.readContent()
            guard case .consumer(let queue, _, let deliveries) = loop.role else {
                throw MessagingError(.protocolError, "basic.deliver on a publisher connection")
            }
            deliveries.yield(
                Delivery(
                    body: content.body, properties: content.properties, redelivered: redelivered, queue: queue,
                    deliveryTag: tag, generation: generation))
        case .ack(let tag, let multiple):
            confirms.settle(upTo: tag, multiple: multiple, failure: nil)
        case .nack(let tag, let multiple):
            confirms.settle(
                upTo: tag, multiple: multiple, failure: MessagingError(.nacked, "the broker nacked the message"))
        case .returned(let routingKey, let replyCode, let replyText):
            _ = try connection.readContent()
            let error = MessagingError(
                .unroutable, "no queue for routing key '\(routingKey)' (\(replyCode) \(replyText))")
            if !confirms.markReturned(routingKey: routingKey, error: error) {
                logger.warning("basic.return for '\(routingKey)' matches no unconfirmed publish")
            }
        case .cancelledByBroker:
            throw MessagingError(.brokerClosed, "the broker cancelled the consumer (queue deleted?)")
        case .close(let close):
            connection.replyCloseOk(isConnection: close.isConnection)
            // 320 CONNECTION_FORCED is an operator or a broker shutdown; anything else is a bug or a misconfiguration
            // (such as 406 PRECONDITION_FAILED for a queue declared with other arguments).
            logger.log(level: close.replyCode == 320 ? .warning : .error, "\(close.description)")
            throw MessagingError(.brokerClosed, close.description)
        case .other(let description):
            logger.debug("ignoring \(description)")
        }
    }

    private func settle(
        tag: UInt64, generation: UInt64, _ settlement: Settlement, on connection: AMQPConnection
    ) throws(MessagingError) {
        guard generation == self.generation else {
            logger.debug("dropping settlement of delivery \(tag) from an earlier connection; it will be redelivered")
            return
        }
        switch settlement {
        case .ack(let multiple): try connection.ack(deliveryTag: tag, multiple: multiple)
        case .reject(let requeue): try connection.reject(deliveryTag: tag, requeue: requeue)
        }
    }

    /// Sends waiting messages while the confirm window has room.
    private func sendPublishes(on connection: AMQPConnection, window: Int, takeNew: Bool) throws(MessagingError) {
        while confirms.count < window {
            if sending == nil {
                guard takeNew, let request = loop.takePublish() else { return }
                sending = PublishBatch(request)
            }
            guard let batch = sending else { return }
            let message = batch.request.messages[batch.nextToSend]
            if let invalid = try connection.publish(message) {
                // The rest of the call is not sent; messages already sent still get their confirms (ignored).
                batch.fail(invalid)
                sending = nil
                continue
            }
            confirms.sent(batch, queue: message.queue)
            batch.nextToSend += 1
            if batch.nextToSend == batch.request.messages.count { sending = nil }
        }
    }

    // MARK: - Closing

    /// Fails everything that belonged to the lost connection: unconfirmed publishes; tags are forgotten because
    /// ``generation`` changes on the next connect.
    private func dropConnectionState(error: MessagingError) {
        sending?.fail(error)
        sending = nil
        confirms.failAll(error)
        consumerTag = nil
    }

    private func closeGracefully(_ connection: AMQPConnection) {
        if let consumerTag {
            do {
                try connection.cancel(consumerTag: consumerTag)
                // Acks handed over before (or while) cancelling still count.
                for (tag, generation, settlement) in loop.takeWork().settlements {
                    try settle(tag: tag, generation: generation, settlement, on: connection)
                }
            } catch {
                logger.warning("AMQP consumer did not cancel cleanly: \(error)")
            }
        }
        dropConnectionState(error: MessagingError(.closed, "the publisher stopped before the broker confirmed"))
        connection.close()
    }
}

@available(*, unavailable)
extension ConnectionWorker: Sendable {}

extension ConnectionLoop {
    /// Role-specific last words: the consumer's stream ends.
    func finishRole() {
        if case .consumer(_, _, let deliveries) = role { deliveries.finish() }
    }
}

/// One publish call as the connection thread tracks it: resumed once, when every message is settled or it fails.
final class PublishBatch {
    let request: PublishRequest
    var nextToSend = 0
    private var unsettled: Int
    private var failure: MessagingError?
    private var finished = false

    init(_ request: PublishRequest) {
        self.request = request
        unsettled = request.messages.count
    }

    func record(_ error: MessagingError) {
        if failure == nil { failure = error }
    }

    func settleOne(failure: MessagingError?) {
        if let failure { record(failure) }
        unsettled -= 1
        guard unsettled == 0, !finished else { return }
        finished = true
        if let failure = self.failure {
            request.continuation.resume(throwing: failure)
        } else {
            request.continuation.resume()
        }
    }

    func fail(_ error: MessagingError) {
        guard !finished else { return }
        finished = true
        request.continuation.resume(throwing: error)
    }
}

/// Publish sequence numbers of one channel in confirm mode (they start at 1) and the batch each belongs to.
struct ConfirmTracker {
    private struct Entry {
        var batch: PublishBatch
        var queue: String
        var returned = false
    }

    private var nextSequence: UInt64 = 1
    /// No sequence number below this is unconfirmed.
    private var oldest: UInt64 = 1
    private var entries: [UInt64: Entry] = [:]

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    mutating func sent(_ batch: PublishBatch, queue: String) {
        entries[nextSequence] = Entry(batch: batch, queue: queue)
        nextSequence += 1
    }

    /// Applies `basic.ack` / `basic.nack` (with `multiple`, everything up to `tag`).
    mutating func settle(upTo tag: UInt64, multiple: Bool, failure: MessagingError?) {
        if multiple {
            let last = min(tag, nextSequence - 1)
            if oldest <= last {
                for sequence in oldest...last {
                    entries.removeValue(forKey: sequence)?.batch.settleOne(failure: failure)
                }
            }
        } else {
            entries.removeValue(forKey: tag)?.batch.settleOne(failure: failure)
        }
        while oldest < nextSequence && entries[oldest] == nil { oldest += 1 }
    }

    /// A `basic.return` precedes the confirm of the message it returns; the broker handles publishes in order, so
    /// it belongs to the oldest unconfirmed, not yet returned message with that routing key.
    mutating func markReturned(routingKey: String, error: MessagingError) -> Bool {
        var sequence = oldest
        while sequence < nextSequence {
            if let entry = entries[sequence], !entry.returned, entry.queue == routingKey {
                entries[sequence]?.returned = true
                entry.batch.record(error)
                return true
            }
            sequence += 1
        }
        return false
    }

    mutating func failAll(_ error: MessagingError) {
        for entry in entries.values { entry.batch.fail(error) }
        entries.removeAll()
        oldest = nextSequence
    }
}
