public import Common
public import Logging
public import Messaging
public import ServiceLifecycle
import Foundation
import Metrics
import Synchronization

/// Thrown by a delivery handler for a message that can never be processed (it does not parse, or fails
/// validation): the message goes to the dead-letter queue at once, without retries.
public struct InvalidMessage: Error, Sendable {
    /// Why, as it will appear in the `x-error` header.
    public var reason: String
    /// A short fixed code for the kind of failure, e.g. `invalid_json`: the `reason` label of
    /// `events_dead_lettered_total` (free text would make the label unbounded).
    public var code: String

    /// Creates the error.
    public init(_ reason: String, code: String = "invalid_message") {
        self.reason = reason
        self.code = code
    }

    /// A body that is not a valid event: `invalid_json` when it does not parse as a JSON object, else `invalid_event`.
    public init(_ error: EventDecodingError) {
        self.init(error.description, code: error.field == nil ? "invalid_json" : "invalid_event")
    }
}

/// Consumes one queue and runs a handler for every delivery, a bounded number at a time.
///
/// Returning from the handler acks the delivery. Throwing `InvalidMessage` moves it to `<queue>.dead`.
/// Any other error is retried with backoff, and after `maxAttempts` the message is moved to `<queue>.dead`
/// too, so a poison message never blocks the queue or loops forever. A move is a confirmed publish followed
/// by the ack; a delivery whose move or handler did not finish (crash, lost connection) is redelivered.
///
/// It counts `events_consumed_total{queue}` per delivery and `events_dead_lettered_total{queue,reason}` per move,
/// with the reason as a short code (``InvalidMessage/code``, or `max_attempts`).
public final class DeliveryLoop: Service, Sendable {
    /// Handles one delivery; see the type's documentation for what returning and throwing mean.
    public typealias Handler = @Sendable (Delivery) async throws -> Void

    private let queue: String
    private let consumer: Consumer
    private let publisher: Publisher
    private let concurrency: Int
    private let maxAttempts: Int
    private let logger: Logger
    private let handler: Handler
    private let metrics: LoopMetrics

    /// Creates the loop. `publisher` must declare `<queue>.dead`.
    public init(
        queue: String, consumer: Consumer, publisher: Publisher, concurrency: Int = 64, maxAttempts: Int = 5,
        logger: Logger, handler: @escaping Handler
    ) {
        precondition(concurrency > 0 && maxAttempts > 0)
        self.queue = queue
        self.consumer = consumer
        self.publisher = publisher
        self.concurrency = concurrency
        self.maxAttempts = maxAttempts
        self.logger = logger
        self.handler = handler
        metrics = LoopMetrics(queue: queue)
    }

    /// Processes deliveries until graceful shutdown; then finishes those in flight and returns.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for await delivery in consumer.deliveries.cancelOnGracefulShutdown() {
                if inFlight == concurrency {
                    await group.next()
                    inFlight -= 1
                }
                inFlight += 1
                metrics.consumed.increment()
                group.addTask { await self.process(delivery) }
            }
            await group.waitForAll()
        }
    }

    private func process(_ delivery: Delivery) async {
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await handler(delivery)
                consumer.ack(delivery)
                return
            } catch let error as InvalidMessage {
                await moveToDeadLetter(delivery, reason: error.reason, code: error.code, attempts: attempt)
                return
            } catch {
                if attempt >= maxAttempts {
                    await moveToDeadLetter(delivery, reason: "\(error)", code: "max_attempts", attempts: attempt)
                    return
                }
                logger.warning(
                    "delivery failed, will retry",
                    metadata: metadata(delivery).merging(["attempt": "\(attempt)", "error": "\(error)"]) { $1 })
                guard (try? await Task.sleep(for: Backoff.retry.delay(attempt: attempt))) != nil else { return }
            }
        }
    }

    private func moveToDeadLetter(_ delivery: Delivery, reason: String, code: String, attempts: Int) async {
        let deadQueue = QueueName.deadLetter(for: queue)
        var properties = delivery.properties
        properties.headers[HeaderName.error] = reason
        properties.headers[HeaderName.failedAt] = Timestamp.format(Date())
        properties.headers[HeaderName.originalQueue] = queue
        properties.headers[HeaderName.attempts] = String(attempts)
        let message = OutboundMessage(queue: deadQueue, body: delivery.body, properties: properties)
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await publisher.publish([message])
                consumer.ack(delivery)
                metrics.deadLettered(code).increment()
                logger.error(
                    "message moved to dead-letter queue",
                    metadata: metadata(delivery).merging([
                        "queue": "\(deadQueue)", "reason": "\(reason)", "code": "\(code)",
                    ]) { $1 })
                return
            } catch {
                logger.warning("could not move message to \(deadQueue), will retry", metadata: ["error": "\(error)"])
                // Not acked: if this task ends here, the broker redelivers the message later.
                guard (try? await Task.sleep(for: Backoff.retry.delay(attempt: attempt))) != nil else { return }
            }
        }
    }

    private func metadata(_ delivery: Delivery) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["queue": "\(queue)"]
        if let id = delivery.properties.messageID { metadata["event_id"] = "\(id)" }
        if let trace = delivery.properties.headers[HeaderName.traceparent] { metadata["traceparent"] = "\(trace)" }
        return metadata
    }
}

extension DeliveryLoop {
    /// `events_consumed_total{queue}` and `events_dead_lettered_total{queue,reason}` of one loop.
    private final class LoopMetrics: Sendable {
        let consumed: Counter
        private let queue: String
        private let factory: any MetricsFactory
        private let deadLetteredByCode = Mutex<[String: Counter]>([:])

        init(queue: String) {
            self.queue = queue
            factory = MetricsSystem.factory
            consumed = Counter(label: "events_consumed_total", dimensions: [("queue", queue)], factory: factory)
        }

        /// The counter for one reason code, made on first use.
        func deadLettered(_ code: String) -> Counter {
            deadLetteredByCode.withLock { counters in
                if let counter = counters[code] { return counter }
                let counter = Counter(
                    label: "events_dead_lettered_total", dimensions: [("queue", queue), ("reason", code)],
                    factory: factory)
                counters[code] = counter
                return counter
            }
        }
    }
}
