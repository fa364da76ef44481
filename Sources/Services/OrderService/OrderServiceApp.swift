import Common
import Foundation
public import HTTPServer
public import Logging
public import Messaging
public import ServiceLifecycle
import Metrics
import ServiceRuntime

/// Everything the order service needs to start.
public struct OrderServiceConfiguration: Sendable {
    /// The admin HTTP listener (default port 8001).
    public var http: HTTPServerConfiguration
    /// The SQLite file holding the snapshots.
    public var databasePath: String
    /// The broker.
    public var broker: BrokerConfiguration
    /// Deliveries the broker may push before they are acked; they are applied concurrently, in shared transactions.
    public var prefetch: UInt16 = 256
    /// Attempts to process a message before it moves to the dead-letter queue.
    public var maxAttempts = 5

    /// Creates a configuration.
    public init(http: HTTPServerConfiguration, databasePath: String, broker: BrokerConfiguration) {
        self.http = http
        self.databasePath = databasePath
        self.broker = broker
    }
}

/// The order service, assembled: its database is open, its services are ready to run.
public struct OrderServiceApp: Sendable {
    /// Run these in a `ServiceGroup`, in this order.
    public let services: [any Service]
    private let server: HTTPServer

    /// Opens the database (failing at once when it cannot be used) and wires the parts together.
    public init(configuration: OrderServiceConfiguration, logger: Logger) throws {
        let source = QueueName.order
        let store = try SQLiteSnapshotStore(path: configuration.databasePath, logger: logger)
        var publishing = configuration.broker
        publishing.connectionName = "order-service publisher"
        var consuming = configuration.broker
        consuming.connectionName = "order-service consumer"
        let publisher = Publisher(
            configuration: publishing, declaring: [QueueName.deadLetter(for: source)], logger: logger)
        let consumer = Consumer(
            configuration: consuming, queue: source, prefetch: configuration.prefetch, logger: logger)
        let applied = Counter(label: "snapshots_applied_total", dimensions: [("result", "applied")])
        let ignored = Counter(label: "snapshots_applied_total", dimensions: [("result", "ignored")])
        let lag = Metrics.Timer(label: MetricName.eventLag)
        let loop = DeliveryLoop(
            queue: source, consumer: consumer, publisher: publisher, concurrency: Int(configuration.prefetch), maxAttempts: configuration.maxAttempts,
            logger: logger
        ) { delivery in
            let event: UserEvent
            do throws(EventDecodingError) {
                event = try UserEvent.decode(body: delivery.body, messageID: delivery.properties.messageID)
            } catch {
                throw InvalidMessage(error)
            }
            let isApplied = try await store.apply(event)
            if isApplied {
                applied.increment()
                if let occurredAt = event.occurredAt {
                    // Clocks of different hosts may disagree a little: a commit never happens before its event.
                    lag.record(duration: .seconds(max(0, Date().timeIntervalSince(occurredAt))))
                }
            } else {
                ignored.increment()
            }
            logger.debug(
                isApplied ? "snapshot applied" : "event already applied or older, ignored",
                metadata: [
                    "event_id": "\(event.eventID)", "user_id": "\(event.userID)", "version": "\(event.version)",
                    "traceparent": "\(delivery.properties.headers[HeaderName.traceparent] ?? "")",
                ])
        }
        var admin = Router()
        SnapshotAPI(store: store).register(in: &admin)
        admin.addMetricsRoute()
        admin.addHealthRoutes {
            let database = await store.isHealthy()
            return Readiness(checks: ["broker": publisher.isConnected && consumer.isConnected, "database": database])
        }
        server = HTTPServer(configuration: configuration.http.recordingMetrics(), router: admin, logger: logger)
        services = [publisher, consumer, loop, server]
    }

    /// The admin port, once listening.
    public func listeningPort() async throws -> Int {
        try await server.listeningPort()
    }
}
