import Common
import Foundation
import Logging
import Messaging
import Synchronization

/// The broker's own two-queue ceiling with the system's settings and message size, through the project's
/// `Messaging` module and without HTTP or databases: publish to queue A in confirmed batches (as the outbox relay
/// does), forward A→B with one confirmed publish then the ack per message (as the router does, `prefetch`
/// deliveries in flight), and drain B with manual acks.
enum BrokerCeiling {
    static let sourceQueue = "bench_ceiling_a"
    static let destinationQueue = "bench_ceiling_b"

    struct Result: Sendable {
        var messages: Int
        var bodyBytes: Int
        /// From the first publish until the last message was taken from B.
        var seconds: Double
        /// From the first publish until the broker confirmed the last one to A.
        var publishSeconds: Double
    }

    /// A body shaped and sized like the events the user service publishes.
    static func sampleBody() -> [UInt8] {
        UserEvent(
            kind: .created, userID: UUID().uuidString.lowercased(), name: "Bench User",
            email: "b000000-p00-w0000-0000000000@bench.example.com", eventID: UUID().uuidString.lowercased(),
            version: 1, occurredAt: Date()
        ).encodedBody()
    }

    static func run(
        url: String, messages: Int, prefetch: UInt16, batchSize: Int, progress: @escaping @Sendable (Int) -> Void
    ) async throws -> Result {
        var configuration = try BrokerConfiguration(url: url)
        var logger = Logger(label: "bench.ceiling")
        logger.logLevel = .warning
        let runTag = String(UUID().uuidString.prefix(8)).lowercased()
        func named(_ name: String) -> BrokerConfiguration {
            configuration.connectionName = "bench ceiling \(name)"
            return configuration
        }
        let publisher = Publisher(
            configuration: named("publisher"), declaring: [sourceQueue, destinationQueue], logger: logger)
        let forwardConsumer = Consumer(
            configuration: named("forward consumer"), queue: sourceQueue, prefetch: prefetch, logger: logger)
        let forwardPublisher = Publisher(
            configuration: named("forward publisher"), declaring: [destinationQueue], logger: logger)
        let drainConsumer = Consumer(
            configuration: named("drain consumer"), queue: destinationQueue, prefetch: prefetch, logger: logger)
        let body = sampleBody()
        let drained = DrainCounter()

        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await publisher.run() }
            group.addTask { try await forwardPublisher.run() }
            group.addTask { try await forwardConsumer.run() }
            group.addTask { try await drainConsumer.run() }
            group.addTask {
                await forward(from: forwardConsumer, with: forwardPublisher, concurrency: Int(prefetch))
            }
            group.addTask {
                for await delivery in drainConsumer.deliveries {
                    drainConsumer.ack(delivery)
                    if delivery.properties.messageID?.hasPrefix(runTag) == true { drained.add() }
                }
            }
            defer { group.cancelAll() }

            let connectDeadline = ContinuousClock.now + .seconds(30)
            while !(publisher.isConnected && forwardPublisher.isConnected && forwardConsumer.isConnected
                && drainConsumer.isConnected)
            {
                guard ContinuousClock.now < connectDeadline else {
                    throw MessagingError(.timeout, "the ceiling's connections did not come up within 30 s")
                }
                try await Task.sleep(for: .milliseconds(20))
            }

            let start = monotonicNanos()
            drained.start(target: messages)
            var sent = 0
            while sent < messages {
                let count = min(batchSize, messages - sent)
                let batch = (sent..<(sent + count)).map { index in
                    OutboundMessage(
                        queue: sourceQueue, body: body,
                        properties: MessageProperties(
                            messageID: "\(runTag)-\(index)", type: "user_created", timestamp: Date(),
                            appID: "user-events-bench", headers: [HeaderName.traceparent: TraceContext.continuing(nil)]))
                }
                try await publisher.publish(batch)
                sent += count
            }
            let published = monotonicNanos()

            var lastReport = ContinuousClock.now
            let drainDeadline = ContinuousClock.now + .seconds(max(30, messages / 500))
            while true {
                if let end = drained.finishedAt { return Result(
                    messages: messages, bodyBytes: body.count, seconds: Double(end - start) / 1e9,
                    publishSeconds: Double(published - start) / 1e9) }
                guard ContinuousClock.now < drainDeadline else {
                    throw MessagingError(.timeout, "only \(drained.count) of \(messages) messages arrived in queue B")
                }
                if ContinuousClock.now - lastReport >= .seconds(1) {
                    lastReport = .now
                    progress(drained.count)
                }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// The router's shape: up to `concurrency` deliveries in flight, each forwarded with a confirmed publish and
    /// acked afterwards.
    private static func forward(from consumer: Consumer, with publisher: Publisher, concurrency: Int) async {
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for await delivery in consumer.deliveries {
                if inFlight == concurrency {
                    await group.next()
                    inFlight -= 1
                }
                inFlight += 1
                group.addTask {
                    let message = OutboundMessage(
                        queue: destinationQueue, body: delivery.body, properties: delivery.properties)
                    do {
                        try await publisher.publish([message])
                        consumer.ack(delivery)
                    } catch {
                        consumer.reject(delivery, requeue: true)
                    }
                }
            }
            await group.waitForAll()
        }
    }
}

/// Counts messages drained from queue B and notes when the target was reached.
private final class DrainCounter: Sendable {
    private struct State {
        var count = 0
        var target = Int.max
        var finishedAt: UInt64?
    }

    private let state = Mutex(State())

    func start(target: Int) {
        state.withLock { state in
            state.target = target
            if state.count >= target { state.finishedAt = monotonicNanos() }
        }
    }

    func add() {
        state.withLock { state in
            state.count += 1
            if state.count >= state.target, state.finishedAt == nil { state.finishedAt = monotonicNanos() }
        }
    }

    var count: Int { state.withLock { $0.count } }
    var finishedAt: UInt64? { state.withLock { $0.finishedAt } }
}
