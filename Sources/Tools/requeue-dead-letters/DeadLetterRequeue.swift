import ArgumentParser
import Common
import Delivery
import Foundation
import Logging
import Messaging
import ServiceRuntime

/// Moves messages from `<queue>.dead` back to `<queue>` after the cause was fixed.
///
/// `--queue` alone decides where messages go: the source is `<queue>.dead`, the destination `<queue>`, never a
/// message header (a header naming another queue is reported, not followed). Both are declared before anything moves.
/// Each message is published to the destination with a confirm, without the dead-letter headers, and only then acked
/// on the dead-letter queue, so none is lost; it is consumed with a prefetch of one, so while it is held the broker's
/// count of ready messages says exactly whether more are waiting, and the tool stops when that count is zero (never
/// on an idle timer, which a slow confirm could outlast). Running it twice, even at once, moves each message once.
/// Queues are declared with the broker configuration's queue type (`AMQP_QUEUE_TYPE`, as the services declare them),
/// and the copy leaves behind the source queue's `x-delivery-count`, which would count against the poison bound.
enum DeadLetterRequeue {
    /// What a run did.
    struct Report: Sendable, Equatable {
        /// The dead-letter queue read.
        var source: String
        /// The queue written.
        var destination: String
        /// Messages moved.
        var moved = 0
        /// Of those, how many named another queue in `x-original-queue`.
        var namedAnotherQueue = 0
        /// Messages ready in the dead-letter queue once the tool stopped (arrived meanwhile, or past `limit`).
        var left = 0
    }

    /// A request the tool refuses before connecting.
    struct InvalidRequest: Error, CustomStringConvertible {
        var description: String
    }

    /// The source and destination of `queue`, or why they are refused.
    static func route(for queue: String) throws -> (source: String, destination: String) {
        let source = QueueName.deadLetter(for: queue)
        guard !queue.isEmpty else { throw InvalidRequest(description: "--queue must name a queue") }
        guard !queue.hasSuffix(".dead") else {
            throw InvalidRequest(
                description: "--queue '\(queue)' is a dead-letter queue: name the queue to move messages back to"
                    + " (messages are read from '\(source)')")
        }
        guard source.utf8.count <= AMQPLimits.shortStringBytes else {
            throw InvalidRequest(description: "--queue is too long for AMQP (at most 250 bytes)")
        }
        return (source, queue)
    }

    /// Moves up to `limit` messages from `<queue>.dead` to `queue`.
    static func move(
        queue: String, broker: BrokerConfiguration, limit: Int = .max, logger: Logger
    ) async throws -> Report {
        let (source, destination) = try route(for: queue)
        var report = Report(source: source, destination: destination)
        var publishing = broker
        publishing.connectionName = "requeue-dead-letters publisher"
        var consuming = broker
        consuming.connectionName = "requeue-dead-letters consumer"
        let publisher = Publisher(configuration: publishing, declaring: [], logger: logger)
        let publisherTask = Task { try await publisher.run() }
        defer { publisherTask.cancel() }

        try await publisher.declare([destination, source])
        guard limit > 0, try await publisher.messageCount(of: source) > 0 else {
            report.left = try await publisher.messageCount(of: source)
            publisherTask.cancel()
            _ = try? await publisherTask.value
            return report
        }

        let consumer = Consumer(configuration: consuming, queue: source, prefetch: 1, logger: logger)
        let consumerTask = Task { try await consumer.run() }
        let (events, feed) = AsyncStream.makeStream(of: Event.self)
        let forwarder = Task {
            for await delivery in consumer.deliveries { feed.yield(.delivery(delivery)) }
            feed.yield(.ended)
        }
        // Another run may hold the last message, so a run that holds none asks the broker now and then.
        let ticker = Task {
            while (try? await Task.sleep(for: .seconds(1))) != nil { feed.yield(.tick) }
        }
        defer {
            ticker.cancel()
            forwarder.cancel()
        }

        // When this run last acked: the broker sends the next message right after, so a tick soon after an ack
        // (ticks pile up while a confirm is slow) may count that message as neither ready nor ours yet.
        var lastAck = ContinuousClock.now
        do {
            loop: for await event in events {
                switch event {
                case .delivery(let delivery):
                    var (properties, originalQueue) = DeadLetter.unmarking(delivery.properties)
                    // The dead-letter queue's count of returns to this tool: on a quorum destination the broker
                    // would pass it on as is, and the consumer would count it as failed attempts.
                    properties.headers[HeaderName.deliveryCount] = nil
                    // Received properties may not fit once re-encoded: send what fits the agreed frame.
                    let fitting = properties.fittedToAMQP(
                        frameMax: publisher.frameMax, keeping: [HeaderName.traceparent, HeaderName.tracestate])
                    properties = fitting.properties
                    if !fitting.dropped.isEmpty {
                        logger.warning(
                            "moved without what AMQP cannot carry of its properties",
                            metadata: [
                                "message_id": .untrusted(delivery.properties.messageID ?? ""),
                                "dropped": .untrusted(fitting.dropped.joined(separator: ", ")),
                            ])
                    }
                    if let originalQueue, originalQueue != destination { report.namedAnotherQueue += 1 }
                    try await publisher.publish([
                        OutboundMessage(queue: destination, body: delivery.body, properties: properties)
                    ])
                    // Asked while this one is held: with a prefetch of one, no other is on its way to us.
                    let waiting = try await publisher.messageCount(of: source)
                    consumer.ack(delivery)
                    lastAck = .now
                    report.moved += 1
                    if waiting == 0 || report.moved >= limit { break loop }
                case .tick:
                    guard ContinuousClock.now - lastAck >= .seconds(2) else { continue }
                    if try await publisher.messageCount(of: source) == 0 { break loop }
                case .ended:
                    break loop
                }
            }
        } catch {
            await stop(consumerTask)
            throw error
        }
        // Stopping the consumer sends every ack handed to it before it closes; what it held unacked goes back.
        await stop(consumerTask)
        report.left = try await publisher.messageCount(of: source)
        publisherTask.cancel()
        _ = try? await publisherTask.value
        return report
    }

    private enum Event: Sendable {
        case delivery(Delivery)
        case tick
        case ended
    }

    private static func stop(_ task: Task<Void, any Error>) async {
        task.cancel()
        _ = try? await task.value
    }
}

/// `requeue-dead-letters`: moves messages from `<queue>.dead` back to `<queue>`.
struct RequeueDeadLettersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requeue-dead-letters",
        abstract: "Moves messages from <queue>.dead back to <queue> once the cause is fixed (confirmed publish, then ack).",
        discussion: """
            --queue alone decides: messages are read from <queue>.dead and published to <queue>, whatever their \
            headers say. Stops when the broker counts no message left in <queue>.dead. Safe to run again.
            """)

    @Option(help: "The queue to move dead letters back to, e.g. queue_order (they are read from queue_order.dead).")
    var queue: String

    @Option(help: "Move at most this many messages.")
    var limit: Int?

    @Option(
        name: .customLong("rabbitmq-url"),
        help: "amqp://user:pass@host:port/vhost, or one per cluster node, comma-separated (env RABBITMQ_URL).")
    var rabbitmqURL: String?

    @Option(
        name: .customLong("amqp-queue-type"),
        help: "classic or quorum: the type the services declare their queues with (env AMQP_QUEUE_TYPE, default classic).")
    var amqpQueueType: String?

    func validate() throws {
        do {
            _ = try DeadLetterRequeue.route(for: queue)
        } catch let error as DeadLetterRequeue.InvalidRequest {
            throw ValidationError(error.description)
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let broker: BrokerConfiguration
        do {
            // The services' broker settings, read the same way, so the tool declares what they declare.
            broker = try Setting.broker(
                Setting.value(rabbitmqURL, env: "RABBITMQ_URL", in: environment),
                heartbeat: Setting.value(nil, env: "AMQP_HEARTBEAT", in: environment),
                caFile: Setting.value(nil, env: "AMQP_CA_FILE", in: environment),
                clientCertificate: Setting.value(nil, env: "AMQP_CLIENT_CERT", in: environment),
                clientKey: Setting.value(nil, env: "AMQP_CLIENT_KEY", in: environment),
                queueType: Setting.value(amqpQueueType, env: "AMQP_QUEUE_TYPE", in: environment))
        } catch let error as ConfigurationError {
            ServiceRunner.exit(configurationError: error)
        }
        ServiceRunner.bootstrapLogging(level: .warning)
        let report = try await DeadLetterRequeue.move(
            queue: queue, broker: broker, limit: limit ?? .max, logger: Logger(label: "requeue-dead-letters"))
        print("moved \(report.moved) message(s) from \(report.source) to \(report.destination)")
        if report.namedAnotherQueue > 0 {
            print(
                "\(report.namedAnotherQueue) of them named another queue in x-original-queue;"
                    + " they went to \(report.destination) as --queue says")
        }
        print("\(report.left) message(s) left in \(report.source)")
    }
}
