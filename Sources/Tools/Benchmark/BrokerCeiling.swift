import CBrokerCeiling
import Foundation
import Logging
import Messaging
import Synchronization

/// The broker's own two-queue ceiling, in the best shape any client can use: batched confirmed publishes to queue
/// A, a forwarder that republishes A to B in batches inside a confirm window and acks A with `multiple`, and a
/// drain of B with `multiple` acks; persistent messages, durable queues. Measured twice on the same broker: with
/// rabbitmq-c alone on its own threads (`CBrokerCeiling`, the yardstick) and with the project's `Messaging` module
/// in that same shape (so our client's overhead is a number too). Each measurement uses two fresh queues and
/// deletes them afterwards.
enum BrokerCeiling {
    struct Result: Sendable {
        var messages: Int
        /// From the first publish until the last message was taken from B.
        var seconds: Double
        /// From the first publish until the broker confirmed the last one to A.
        var publishSeconds: Double
    }

    struct Settings: Sendable {
        var url: String
        var queueType: QueueType
        var messages: Int
        var bodyBytes: Int
        var prefetch: UInt16
        var batchSize: Int
        var timeoutSeconds: Int { max(60, messages / 200) }
    }

    /// Two queue names no earlier run used.
    static func queueNames() -> (String, String) {
        let tag = String(UUID().uuidString.prefix(8)).lowercased()
        return ("bench_ceiling_\(tag)_a", "bench_ceiling_\(tag)_b")
    }

    // MARK: - rabbitmq-c alone

    /// Runs the C ceiling on its own threads (blocking a thread of ours only to wait for it).
    static func runRabbitMQC(_ settings: Settings) async throws -> Result {
        let configuration = try BrokerConfiguration(url: settings.url)
        guard !configuration.useTLS else {
            throw BenchmarkError("the rabbitmq-c ceiling speaks plain AMQP only; give the bench an amqp:// URL")
        }
        let (queueA, queueB) = queueNames()
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Swift.Result {
                    try runC(configuration, settings: settings, queueA: queueA, queueB: queueB)
                })
            }.start()
        }
    }

    private static func runC(
        _ configuration: BrokerConfiguration, settings: Settings, queueA: String, queueB: String
    ) throws -> Result {
        try withCOptions(configuration, settings: settings, queueA: queueA, queueB: queueB) { options in
            var result = bc_result()
            let status = bc_run(&options, &result)
            var deleteError = [CChar](repeating: 0, count: 256)
            _ = bc_delete_queues(&options, &deleteError)
            guard status == 0 else {
                let message = withUnsafeBytes(of: result.error) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                throw BenchmarkError("rabbitmq-c ceiling: \(message)")
            }
            return Result(
                messages: Int(result.drained), seconds: Double(result.drained_ns - result.start_ns) / 1e9,
                publishSeconds: Double(result.published_ns - result.start_ns) / 1e9)
        }
    }

    private static func withCOptions<T>(
        _ configuration: BrokerConfiguration, settings: Settings, queueA: String, queueB: String,
        _ body: (inout bc_options) throws -> T
    ) throws -> T {
        try configuration.host.withCString { host in
            try configuration.user.withCString { user in
                try configuration.password.withCString { password in
                    try configuration.virtualHost.withCString { vhost in
                        try queueA.withCString { a in
                            try queueB.withCString { b in
                                var options = bc_options(
                                    host: host, port: Int32(configuration.port), user: user, password: password,
                                    vhost: vhost, queue_a: a, queue_b: b, quorum: settings.queueType == .quorum ? 1 : 0,
                                    messages: Int32(settings.messages), body_bytes: Int32(settings.bodyBytes),
                                    publish_batch: Int32(settings.batchSize), publish_window: Int32(2 * settings.batchSize),
                                    prefetch: Int32(settings.prefetch), timeout_seconds: Int32(settings.timeoutSeconds))
                                return try body(&options)
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: - The Messaging module in the same shape

    /// The same three roles through `Publisher` and `Consumer`: `publish([...])` of whole batches inside a window of
    /// two, the forwarder republishing what it holds as one batch and acking its last delivery with `multiple` once
    /// confirmed (in order), the drain acking with `multiple` every half prefetch.
    static func runMessaging(_ settings: Settings, progress: @escaping @Sendable (Int) -> Void) async throws -> Result {
        var configuration = try BrokerConfiguration(url: settings.url)
        configuration.queueType = settings.queueType
        var logger = Logger(label: "bench.ceiling")
        logger.logLevel = .warning
        let (queueA, queueB) = queueNames()
        func named(_ name: String) -> BrokerConfiguration {
            configuration.connectionName = "bench ceiling \(name)"
            return configuration
        }
        let publisher = Publisher(configuration: named("publisher"), declaring: [queueA, queueB], logger: logger)
        let forwardConsumer = Consumer(
            configuration: named("forward consumer"), queue: queueA, prefetch: settings.prefetch, logger: logger)
        let forwardPublisher = Publisher(configuration: named("forward publisher"), declaring: [queueB], logger: logger)
        let drainConsumer = Consumer(
            configuration: named("drain consumer"), queue: queueB, prefetch: settings.prefetch, logger: logger)
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: settings.bodyBytes)
        let messages = settings.messages
        let drained = DrainCounter()
        let half = max(1, Int(settings.prefetch) / 2)
        defer { deleteQueues(configuration, settings: settings, queueA: queueA, queueB: queueB) }

        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await publisher.run() }
            group.addTask { try await forwardPublisher.run() }
            group.addTask { try await forwardConsumer.run() }
            group.addTask { try await drainConsumer.run() }
            group.addTask {
                await forward(
                    from: forwardConsumer, with: forwardPublisher, to: queueB, expected: messages, batch: max(1, half / 2))
            }
            group.addTask {
                var count = 0
                var unacked = 0
                for await delivery in drainConsumer.deliveries {
                    count += 1
                    unacked += 1
                    if unacked >= half || count >= messages {
                        drainConsumer.ack(delivery, multiple: true)
                        unacked = 0
                    }
                    drained.add()
                }
            }
            defer { group.cancelAll() }

            let connectDeadline = ContinuousClock.now + .seconds(30)
            while !(publisher.isConnected && forwardPublisher.isConnected && forwardConsumer.isConnected
                && drainConsumer.isConnected)
            {
                guard ContinuousClock.now < connectDeadline else {
                    throw BenchmarkError("the Messaging ceiling's connections did not come up within 30 s")
                }
                try await Task.sleep(for: .milliseconds(20))
            }

            let start = monotonicNanos()
            drained.start(target: messages)
            let properties = MessageProperties()
            let batch = (0..<settings.batchSize).map { _ in
                OutboundMessage(queue: queueA, body: body, properties: properties)
            }
            // Two batches in flight: the next is sent while the broker confirms the one before.
            try await withThrowingTaskGroup(of: Void.self) { batches in
                var sent = 0
                var inFlight = 0
                while sent < messages {
                    let count = min(settings.batchSize, messages - sent)
                    if inFlight == 2 {
                        _ = try await batches.next()
                        inFlight -= 1
                    }
                    let slice = Array(batch.prefix(count))
                    batches.addTask { try await publisher.publish(slice) }
                    inFlight += 1
                    sent += count
                }
                try await batches.waitForAll()
            }
            let published = monotonicNanos()

            var lastReport = ContinuousClock.now
            let drainDeadline = ContinuousClock.now + .seconds(settings.timeoutSeconds)
            while true {
                if let end = drained.finishedAt {
                    return Result(
                        messages: messages, seconds: Double(end - start) / 1e9,
                        publishSeconds: Double(published - start) / 1e9)
                }
                guard ContinuousClock.now < drainDeadline else {
                    throw BenchmarkError("Messaging ceiling: only \(drained.count) of \(messages) messages arrived in queue B")
                }
                if ContinuousClock.now - lastReport >= .seconds(1) {
                    lastReport = .now
                    progress(drained.count)
                }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// Collects deliveries into batches of `batch` (or fewer for the last of `expected`), publishes each batch
    /// as one `publish([...])` with up to two batches in flight, and acks each batch's last delivery with
    /// `multiple` once it is confirmed, in the order the batches were taken.
    private static func forward(
        from consumer: Consumer, with publisher: Publisher, to queue: String, expected: Int, batch: Int
    ) async {
        var pending: [Delivery] = []
        var received = 0
        var inFlight: [(task: Task<Bool, Never>, last: Delivery)] = []
        for await delivery in consumer.deliveries {
            pending.append(delivery)
            received += 1
            guard pending.count >= batch || received >= expected, let last = pending.last else { continue }
            let messages = pending.map { OutboundMessage(queue: queue, body: $0.body, properties: $0.properties) }
            pending.removeAll(keepingCapacity: true)
            inFlight.append((Task { (try? await publisher.publish(messages)) != nil }, last))
            while inFlight.count >= 2 || (received >= expected && !inFlight.isEmpty) {
                let oldest = inFlight.removeFirst()
                if await oldest.task.value {
                    consumer.ack(oldest.last, multiple: true)
                } else {
                    consumer.reject(oldest.last, requeue: true)
                }
            }
        }
    }

    private static func deleteQueues(
        _ configuration: BrokerConfiguration, settings: Settings, queueA: String, queueB: String
    ) {
        guard !configuration.useTLS else { return }
        _ = try? withCOptions(configuration, settings: settings, queueA: queueA, queueB: queueB) { options in
            var error = [CChar](repeating: 0, count: 256)
            return bc_delete_queues(&options, &error)
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
