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
/// too, so a poison message never blocks the queue or loops forever (``DeliveryPolicy`` decides which; the count
/// survives restarts and crashes, see ``DeliveryPolicy/arrival(redelivered:headers:)``). Throwing
/// ``DependencyUnavailable`` is no attempt: deliveries pause until a retry of the held one goes through. A move is a
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
    private let gate = DependencyGate()

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

    /// What `/readyz` should report down while deliveries are paused, nil while they flow.
    var unavailableDependency: DependencyUnavailable? { gate.fault }

    private func process(_ delivery: Delivery) async {
        var attempt: Int
        switch policy.arrival(redelivered: delivery.redelivered, headers: delivery.properties.headers) {
        case .handle(let prior):
            attempt = prior
        case .recount(let attempts):
            var properties = delivery.properties
            properties.headers[HeaderName.attempts] = String(attempts)
            await relocate(delivery, OutboundMessage(queue: queue, body: delivery.body, properties: properties)) {
                logger.warning(
                    "message redelivered unsettled, requeued with its attempt count",
                    metadata: metadata(delivery).merging(["attempts": "\(attempts)"]) { $1 })
            }
            return
        case .deadLetter(let letter, let code):
            await moveToDeadLetter(delivery, letter, code: code)
            return
        }
        var holds = 0
        while true {
            // A delivery held for a fault of a dependency retries on its own rhythm; the others wait for it.
            if holds == 0 {
                guard await waitWhilePaused() else { return }
            }
            attempt += 1
            let outcome: Result<Void, any Error>
            do {
                try await handler(delivery)
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            let decision = policy.decide(after: outcome, attempt: attempt)
            if case .success = outcome, gate.open() {
                logger.notice("dependency back, deliveries resumed", metadata: ["queue": "\(queue)"])
            }
            switch decision {
            case .ack:
                source.ack(delivery, multiple: false)
                return
            case .deadLetter(let letter, let code):
                await moveToDeadLetter(delivery, letter, code: code)
                return
            case .retry(let delay):
                holds = 0
                if case .failure(let error) = outcome {
                    logger.warning(
                        "delivery failed, will retry",
                        metadata: metadata(delivery).merging(["attempt": "\(attempt)", "error": .untrusted(error)]) { $1 })
                }
                guard await sleepUnlessStopping(delay) else { return }
            case .hold(let fault):
                attempt -= 1
                holds += 1
                if gate.close(fault) {
                    logger.error(
                        "\(fault.dependency) unavailable, deliveries paused until it is back",
                        metadata: ["queue": "\(queue)", "reason": "\(fault.reason)"])
                }
                guard await sleepUnlessStopping(policy.probeDelay(attempt: holds)) else { return }
            }
        }
    }

    /// Waits while a dependency is unavailable, at most the longest backoff (so that a waiting delivery tries, and
    /// may become the probe, should every held one have left); false when the loop is stopping (the delivery stays
    /// unacked, and the broker delivers it again later).
    private func waitWhilePaused() async -> Bool {
        guard gate.fault != nil else { return true }
        let longest = policy.backoff.maximum
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.gate.waitUntilOpen() }
                group.addTask { try? await Task.sleep(for: longest) }
                await group.next()
                group.cancelAll()
            }
        }
        return !Task.isCancelled && !Task.isShuttingDownGracefully
    }

    /// Sleeps; false when cancelled, or when graceful shutdown began while deliveries are paused (a held delivery
    /// must not delay the shutdown: it stays unacked and is delivered again).
    private func sleepUnlessStopping(_ delay: Duration) async -> Bool {
        guard gate.fault != nil else { return (try? await Task.sleep(for: delay)) != nil }
        let slept = (try? await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }) != nil
        return slept && !Task.isShuttingDownGracefully
    }

    private func moveToDeadLetter(_ delivery: Delivery, _ letter: DeadLetter, code: String) async {
        let deadQueue = QueueName.deadLetter(for: queue)
        let message = OutboundMessage(
            queue: deadQueue, body: delivery.body, properties: letter.marking(delivery.properties, movedFrom: queue))
        await relocate(delivery, message) {
            metrics.deadLettered.labelled(code).increment()
            logger.error(
                "message moved to dead-letter queue",
                metadata: metadata(delivery).merging([
                    "queue": "\(deadQueue)", "reason": .untrusted(letter.reason), "code": "\(code)",
                ]) { $1 })
        }
    }

    /// Publishes `message` (a copy of `delivery`) with confirm, then acks `delivery`; retried with backoff until the
    /// broker confirms. A destination that has disappeared (the publish came back unroutable) is declared again.
    private func relocate(_ delivery: Delivery, _ message: OutboundMessage, done: () -> Void) async {
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await publisher.publish([message])
                source.ack(delivery, multiple: false)
                done()
                return
            } catch {
                logger.warning("could not publish to \(message.queue), will retry", metadata: ["error": "\(error)"])
                if let error = error as? MessagingError, error.code == .unroutable {
                    try? await publisher.declare([message.queue])
                }
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
