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
/// Deliveries the consumer hands over together are taken as a batch (at most `maxBatch`). With a batch handler, a
/// batch whose messages all arrive for a first handling is handled in one call, and acked with one `multiple` ack
/// once every delivery below it has finished (``AckTracker``); a batch handler that throws changes nothing for the
/// messages: each is then handled on its own as above, so that a poison message is retried and dead-lettered alone
/// with its own attempt count and a dependency fault holds without counting.
///
/// It counts `events_consumed_total{queue}` per delivery and `events_dead_lettered_total{queue,reason}` per move,
/// with the reason as a short code (``InvalidMessage/code``, or `max_attempts`).
public final class DeliveryLoop: Service, Sendable {
    /// Handles one delivery; see the type's documentation for what returning and throwing mean.
    public typealias Handler = @Sendable (Delivery) async throws -> Void
    /// Handles several deliveries at once, all or nothing: returning acks them all; throwing hands each to the
    /// ``Handler`` on its own (the failed batch counts as no attempt).
    public typealias BatchHandler = @Sendable ([Delivery]) async throws -> Void

    private let queue: String
    private let source: any DeliverySource
    private let publisher: any ConfirmedPublisher
    private let concurrency: Int
    private let policy: DeliveryPolicy
    private let logger: Logger
    private let handler: Handler
    private let batchHandler: BatchHandler?
    private let maxBatch: Int
    private let metrics: LoopMetrics
    private let gate = DependencyGate()
    private let acks = AckTracker()

    /// Creates the loop. `publisher` must declare `<queue>.dead`. `batchHandler`, if any, takes batches of at most
    /// `maxBatch` deliveries (default: a quarter of `concurrency`, so that several batches overlap).
    public convenience init(
        queue: String, consumer: Consumer, publisher: Publisher, concurrency: Int = 64, maxAttempts: Int = 5,
        maxBatch: Int? = nil, logger: Logger, handler: @escaping Handler, batchHandler: BatchHandler? = nil
    ) {
        self.init(
            queue: queue, source: consumer, publisher: publisher, concurrency: concurrency,
            policy: DeliveryPolicy(maxAttempts: maxAttempts, brokerCountsDeliveries: consumer.queueType == .quorum),
            maxBatch: maxBatch, logger: logger, handler: handler,
            batchHandler: batchHandler)
    }

    /// Creates the loop over any source and publisher; its metrics bind to the factory current now.
    init(
        queue: String, source: any DeliverySource, publisher: any ConfirmedPublisher, concurrency: Int,
        policy: DeliveryPolicy, maxBatch: Int? = nil, logger: Logger, handler: @escaping Handler,
        batchHandler: BatchHandler? = nil
    ) {
        precondition(concurrency > 0)
        precondition((maxBatch ?? 1) > 0)
        self.batchHandler = batchHandler
        self.maxBatch = min(concurrency, maxBatch ?? max(1, concurrency / 4))
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
        await withTaskGroup(of: Int.self) { group in
            var inFlight = 0
            for await batch in source.batches.cancelOnGracefulShutdown() {
                acks.taken(batch)
                metrics.consumed.increment(by: batch.count)
                var rest = batch[...]
                while !rest.isEmpty {
                    let chunk = Array(rest.prefix(maxBatch))
                    rest = rest.dropFirst(chunk.count)
                    while inFlight > 0 && inFlight + chunk.count > concurrency {
                        inFlight -= await group.next() ?? inFlight
                    }
                    inFlight += chunk.count
                    group.addTask {
                        await self.process(chunk)
                        return chunk.count
                    }
                }
            }
            await group.waitForAll()
        }
    }

    /// What `/readyz` should report down while deliveries are paused, nil while they flow.
    public var unavailableDependency: DependencyUnavailable? { gate.fault }

    /// Handles `deliveries` as one batch when the batch handler can take them, else (or when the batch failed) each
    /// on its own, concurrently.
    private func process(_ deliveries: [Delivery]) async {
        let arrivals = deliveries.map { policy.arrival(redelivered: $0.redelivered, headers: $0.properties.headers) }
        if deliveries.count > 1, let batchHandler, gate.fault == nil,
            arrivals.allSatisfy({ if case .handle = $0 { true } else { false } })
        {
            do {
                try await batchHandler(deliveries)
                settle(deliveries)
                if gate.open() {
                    logger.notice("dependency back, deliveries resumed", metadata: ["queue": "\(queue)"])
                }
                return
            } catch {
                logger.debug(
                    "batch failed, handling its deliveries one by one",
                    metadata: ["queue": "\(queue)", "deliveries": "\(deliveries.count)", "error": .untrusted(error)])
            }
        }
        if deliveries.count == 1 {
            await process(deliveries[0], arrivals[0])
            return
        }
        await withTaskGroup(of: Void.self) { group in
            for (delivery, arrival) in zip(deliveries, arrivals) {
                group.addTask { await self.process(delivery, arrival) }
            }
        }
    }

    /// Acks deliveries that finished: with one `multiple` ack where every delivery below has finished too.
    private func settle(_ deliveries: [Delivery]) {
        acks.settle(deliveries) { delivery, multiple in source.ack(delivery, multiple: multiple) }
    }

    /// Handles one delivery that arrived as `arrival` says (``DeliveryPolicy/arrival(redelivered:headers:)``).
    private func process(_ delivery: Delivery, _ arrival: DeliveryPolicy.Arrival) async {
        var attempt: Int
        switch arrival {
        case .handle(let prior):
            attempt = prior
        case .recount(let attempts):
            var properties = delivery.properties
            properties.headers[HeaderName.attempts] = String(attempts)
            // Received properties may no longer fit once re-encoded (a float rendered as a longer string, invalid
            // UTF-8 repaired into three bytes a byte): the copy carries what fits, and the log says what was left out.
            let refusal = await relocateFitted(delivery) { frameMax in
                let fitting = properties.fittedToAMQP(frameMax: frameMax, keeping: [HeaderName.attempts])
                let copy = OutboundMessage(queue: queue, body: delivery.body, properties: fitting.properties)
                return (copy, { [self] in
                    var details = metadata(delivery).merging(["attempts": "\(attempts)"]) { $1 }
                    if !fitting.dropped.isEmpty { details["dropped"] = .untrusted(fitting.dropped.joined(separator: ", ")) }
                    logger.warning("message redelivered unsettled, requeued with its attempt count", metadata: details)
                })
            }
            if let refusal {
                // Retrying cannot make it fit: set it aside instead of holding it for ever.
                let letter = DeadLetter(
                    reason: "could not be requeued with its attempt count: \(refusal)", attempts: attempts)
                await moveToDeadLetter(delivery, letter, code: "unencodable")
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
                settle([delivery])
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
                } else if holds & (holds - 1) == 0 {
                    // A pause that lasts shows its latest reason now and then (probes 1, 2, 4, 8, ...), not once only.
                    logger.warning(
                        "\(fault.dependency) still unavailable, the held delivery will be tried again",
                        metadata: ["queue": "\(queue)", "reason": "\(fault.reason)", "probes": "\(holds)"])
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
        let refusal = await relocateFitted(delivery) { frameMax in
            let properties = letter.marking(delivery.properties, movedFrom: queue, frameMax: frameMax)
            return (OutboundMessage(queue: deadQueue, body: delivery.body, properties: properties), { [self] in
                metrics.deadLettered.labelled(code).increment()
                logger.error(
                    "message moved to dead-letter queue",
                    metadata: metadata(delivery).merging([
                        "queue": "\(deadQueue)", "reason": .untrusted(letter.reason), "code": "\(code)",
                    ]) { $1 })
            })
        }
        if let refusal {
            // Only a body over the broker's own limit gets here, and the broker never delivers one: left unacked.
            logger.error(
                "dead-letter copy cannot be encoded", metadata: metadata(delivery).merging(["error": "\(refusal)"]) { $1 })
        }
    }

    /// Relocates the copy of `delivery` that `copy` makes for a frame size: fitted to the size agreed with the broker
    /// now, and, should that be refused as unencodable (a reconnect agreed to less), once more to the least a broker
    /// may agree to. Returns the refusal when both were refused; nil when the copy moved or the loop is stopping.
    private func relocateFitted(
        _ delivery: Delivery, _ copy: (_ frameMax: Int) -> (message: OutboundMessage, done: () -> Void)
    ) async -> MessagingError? {
        var refusal: MessagingError?
        for frameMax in [publisher.frameMax, AMQPLimits.minimumFrameSize] {
            let (message, done) = copy(frameMax)
            guard case .unencodable(let error) = await relocate(delivery, message, done: done) else { return nil }
            refusal = error
        }
        return refusal
    }

    /// How a ``relocate(_:_:done:)`` ended.
    private enum Relocation {
        /// The copy was confirmed and the delivery acked.
        case moved
        /// The loop is stopping: the delivery stays unacked, and the broker delivers it again later.
        case stopped
        /// The copy cannot be encoded (``MessagingError/Code/unencodable``): publishing it again cannot succeed.
        case unencodable(MessagingError)
    }

    /// Publishes `message` (a copy of `delivery`) with confirm, then acks `delivery`; retried with backoff until the
    /// broker confirms, unless the copy cannot be encoded. A destination that has disappeared (the publish came back
    /// unroutable) is declared again.
    private func relocate(_ delivery: Delivery, _ message: OutboundMessage, done: () -> Void) async -> Relocation {
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await publisher.publish([message])
                settle([delivery])
                done()
                return .moved
            } catch let error as MessagingError where error.code == .unencodable {
                return .unencodable(error)
            } catch {
                logger.warning("could not publish to \(message.queue), will retry", metadata: ["error": "\(error)"])
                if let error = error as? MessagingError, error.code == .unroutable {
                    try? await publisher.declare([message.queue])
                }
                // Not acked: if this task ends here, the broker redelivers the message later.
                guard (try? await Task.sleep(for: policy.moveRetryDelay(attempt: attempt))) != nil else { return .stopped }
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
