import Common
public import Logging
public import Messaging
public import ServiceLifecycle
import Metrics
import ServiceRuntime

/// Consumes one queue and runs a handler for every delivery, a bounded number at a time.
///
/// Returning from the handler acks the delivery. Throwing `InvalidMessage` moves it to `<queue>.dead`.
/// Any other error is retried with backoff, and after `maxAttempts` the message is moved to `<queue>.dead`
/// too, so a poison message never blocks the queue or loops forever (``DeliveryPolicy`` decides which). A move is a
/// confirmed publish followed by the ack (``DeadLetter`` writes its headers); a delivery whose move or handler did not
/// finish (crash, lost connection) is redelivered.
///
/// It counts `events_consumed_total{queue}` per delivery and `events_dead_lettered_total{queue,reason}` per move,
/// with the reason as a short code (``InvalidMessage/code``, or `max_attempts`).
public final class DeliveryLoop: Service, Sendable {
    /// Handles one delivery; see the type's documentation for what returning and throwing mean.
    public typealias Handler = @Sendable (Delivery) async throws -> Void

    private let queue: String
    private let source: any DeliverySource
    private let publisher: any ConfirmedPublisher
    private let concurrency: Int
    private let policy: DeliveryPolicy
    private let logger: Logger
    private let handler: Handler
    private let metrics: LoopMetrics

    /// Creates the loop. `publisher` must declare `<queue>.dead`.
    public convenience init(
        queue: String, consumer: Consumer, publisher: Publisher, concurrency: Int = 64, maxAttempts: Int = 5,
        logger: Logger, handler: @escaping Handler
    ) {
        self.init(
            queue: queue, source: consumer, publisher: publisher, concurrency: concurrency,
            policy: DeliveryPolicy(maxAttempts: maxAttempts), logger: logger, handler: handler)
    }

    /// Creates the loop over any source and publisher; its metrics bind to the factory current now.
    init(
        queue: String, source: any DeliverySource, publisher: any ConfirmedPublisher, concurrency: Int,
        policy: DeliveryPolicy, logger: Logger, handler: @escaping Handler
    ) {
        precondition(concurrency > 0)
        self.queue = queue
        self.source = source
        self.publisher = publisher
        self.concurrency = concurrency
        self.policy = policy
        self.logger = logger
        self.handler = handler
        metrics = LoopMetrics(queue: queue)
    }

    /// Processes deliveries until graceful shutdown (or the end of the source); then finishes those in flight and
    /// returns.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for await delivery in source.deliveries.cancelOnGracefulShutdown() {
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
            let outcome: Result<Void, any Error>
            do {
                try await handler(delivery)
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            switch policy.decide(after: outcome, attempt: attempt) {
            case .ack:
                source.ack(delivery, multiple: false)
                return
            case .deadLetter(let letter, let code):
                await moveToDeadLetter(delivery, letter, code: code)
                return
            case .retry(let delay):
                if case .failure(let error) = outcome {
                    logger.warning(
                        "delivery failed, will retry",
                        metadata: metadata(delivery).merging(["attempt": "\(attempt)", "error": .untrusted(error)]) { $1 })
                }
                guard (try? await Task.sleep(for: delay)) != nil else { return }
            }
        }
    }

    private func moveToDeadLetter(_ delivery: Delivery, _ letter: DeadLetter, code: String) async {
        let deadQueue = QueueName.deadLetter(for: queue)
        let message = OutboundMessage(
            queue: deadQueue, body: delivery.body, properties: letter.marking(delivery.properties, movedFrom: queue))
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await publisher.publish([message])
                source.ack(delivery, multiple: false)
                metrics.deadLettered.labelled(code).increment()
                logger.error(
                    "message moved to dead-letter queue",
                    metadata: metadata(delivery).merging([
                        "queue": "\(deadQueue)", "reason": .untrusted(letter.reason), "code": "\(code)",
                    ]) { $1 })
                return
            } catch {
                logger.warning("could not move message to \(deadQueue), will retry", metadata: ["error": "\(error)"])
                // Not acked: if this task ends here, the broker redelivers the message later.
                guard (try? await Task.sleep(for: policy.moveRetryDelay(attempt: attempt))) != nil else { return }
            }
        }
    }

    private func metadata(_ delivery: Delivery) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["queue": "\(queue)"]
        if let id = delivery.properties.messageID { metadata["event_id"] = .untrusted(id) }
        if let trace = delivery.properties.headers[HeaderName.traceparent] { metadata["traceparent"] = .untrusted(trace) }
        return metadata
    }
}

/// `events_consumed_total{queue}` and `events_dead_lettered_total{queue,reason}` of one loop.
private struct LoopMetrics: Sendable {
    let consumed: Counter
    let deadLettered: MetricFamily<Counter>

    init(queue: String) {
        consumed = Counter(label: "events_consumed_total", dimensions: [("queue", queue)], factory: MetricsSystem.factory)
        deadLettered = MetricFamily(counter: "events_dead_lettered_total", fixed: [("queue", queue)], varying: ["reason"])
    }
}
