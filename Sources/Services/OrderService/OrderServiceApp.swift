import Common
import Delivery
public import HTTPServer
public import Logging
public import Messaging
public import ServiceRuntime

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
    private let service: ConsumingService

    /// Opens the database (failing at once when it cannot be used) and wires the parts together.
    public init(configuration: OrderServiceConfiguration, logger: Logger) throws {
        let store = try SQLiteSnapshotStore(path: configuration.databasePath, logger: logger)
        let connections = ConsumerConnections(
            service: "order-service", queue: QueueName.order, broker: configuration.broker,
            prefetch: configuration.prefetch, logger: logger)
        let applier = SnapshotApplier(store: store, logger: logger)
        service = ConsumingService(
            connections, maxAttempts: configuration.maxAttempts, http: configuration.http, logger: logger,
            routes: { SnapshotAPI(store: store).register(in: &$0) },
            checks: { ["database": await store.isHealthy()] },
            handler: applier.handle)
    }

    /// Everything to run, in stages.
    public var services: ServiceStages { service.stages }

    /// The admin port, once listening.
    public func listeningPort() async throws -> Int {
        try await service.listeningPort()
    }
}
