import ArgumentParser
import Common
import Delivery
import Foundation
import Logging
import Messaging
import ServiceRuntime
import Synchronization

/// Moves messages from `<queue>.dead` back to `<queue>` after the cause was fixed: each one is published
/// (confirmed) without the dead-letter headers, then acked on the dead-letter queue, so none is lost on the way.
enum DeadLetterRequeue {
    /// Moves up to `limit` messages; stops when the dead-letter queue stays empty for `idle`. Returns how many moved.
    static func move(
        queue: String, broker: BrokerConfiguration, limit: Int = .max, idle: Duration = .seconds(1), logger: Logger
    ) async throws -> Int {
        let deadQueue = QueueName.deadLetter(for: queue)
        var publishing = broker
        publishing.connectionName = "requeue-dead-letters publisher"
        var consuming = broker
        consuming.connectionName = "requeue-dead-letters consumer"
        let publisher = Publisher(configuration: publishing, declaring: [queue], logger: logger)
        let consumer = Consumer(configuration: consuming, queue: deadQueue, prefetch: 100, logger: logger)
        let lastActivity = ActivityClock()
        enum Outcome { case stopped, idle, moved(Int) }
        return try await withThrowingTaskGroup(of: Outcome.self) { group in
            group.addTask {
                try await publisher.run()
                return .stopped
            }
            group.addTask {
                try await consumer.run()
                return .stopped
            }
            group.addTask {
                var moved = 0
                for await delivery in consumer.deliveries {
                    let (properties, originalQueue) = DeadLetter.unmarking(delivery.properties)
                    try await publisher.publish([
                        OutboundMessage(queue: originalQueue ?? queue, body: delivery.body, properties: properties)
                    ])
                    consumer.ack(delivery)
                    moved += 1
                    lastActivity.touch()
                    if moved == limit { break }
                }
                return .moved(moved)
            }
            group.addTask {
                // The queue counts as empty once nothing arrived for `idle` after the consumer connected.
                while !consumer.isConnected { try await Task.sleep(for: .milliseconds(20)) }
                lastActivity.touch()
                while lastActivity.sinceLast < idle {
                    try await Task.sleep(for: .milliseconds(50))
                }
                return .idle
            }
            var moved = 0
            // Stopping the consumer sends the acks handed to it first; the mover then ends with its count.
            while let outcome = try await group.next() {
                switch outcome {
                case .moved(let count):
                    moved = count
                    group.cancelAll()
                case .idle:
                    group.cancelAll()
                case .stopped:
                    continue
                }
            }
            return moved
        }
    }
}

/// `requeue-dead-letters`: moves messages from `<queue>.dead` back to `<queue>`.
struct RequeueDeadLettersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requeue-dead-letters",
        abstract: "Moves messages from <queue>.dead back to <queue> once the cause is fixed (confirmed publish, then ack).")

    @Option(help: "The queue whose dead letters to move back, e.g. queue_order or queue_dispatch.")
    var queue: String

    @Option(help: "Move at most this many messages.")
    var limit: Int?

    @Option(name: .customLong("rabbitmq-url"), help: "amqp://user:pass@host:port/vhost (env RABBITMQ_URL).")
    var rabbitmqURL: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let broker: BrokerConfiguration
        do {
            broker = try Setting.broker(
                Setting.value(rabbitmqURL, env: "RABBITMQ_URL", in: environment),
                heartbeat: Setting.value(nil, env: "AMQP_HEARTBEAT", in: environment))
        } catch let error as ConfigurationError {
            ServiceRunner.exit(configurationError: error)
        }
        ServiceRunner.bootstrapLogging(level: .warning)
        let moved = try await DeadLetterRequeue.move(
            queue: queue, broker: broker, limit: limit ?? .max, logger: Logger(label: "requeue-dead-letters"))
        print("moved \(moved) message(s) from \(QueueName.deadLetter(for: queue)) to \(queue)")
    }
}

/// When something last happened, shared between tasks.
private final class ActivityClock: Sendable {
    private let last = Mutex(ContinuousClock.now)

    func touch() { last.withLock { $0 = .now } }

    var sinceLast: Duration { ContinuousClock.now - last.withLock { $0 } }
}
