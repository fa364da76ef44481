import Common
public import HTTPServer
import PostgresStorage
import ServiceKit
import ServiceLifecycle
public import Logging
public import Messaging
public import ServiceRuntime

/// Everything the order service needs to start.
public struct OrderServiceConfiguration: Sendable {
    /// The admin HTTP listener (default port 8001).
    public var http: HTTPServerConfiguration
    /// The database holding the snapshots: an SQLite file, or PostgreSQL (shared by several instances).
    public var database: DatabaseLocation
    /// The broker.
    public var broker: BrokerConfiguration
    /// Deliveries the broker may push before they are acked; they are applied concurrently, in shared transactions.
    public var prefetch: UInt16 = 256
    /// Attempts to process a message before it moves to the dead-letter queue.
    public var maxAttempts = 5

    /// Creates a configuration.
    public init(http: HTTPServerConfiguration, database: DatabaseLocation, broker: BrokerConfiguration) {
        self.http = http
        self.database = database
        self.broker = broker
    }

    /// Creates a configuration with the snapshots in the SQLite file at `databasePath`.
    public init(http: HTTPServerConfiguration, databasePath: String, broker: BrokerConfiguration) {
        self.init(http: http, database: .sqlite(path: databasePath), broker: broker)
    }
}

/// The order service, assembled: its database is open, its services are ready to run.
public struct OrderServiceApp: Sendable {
    private let service: AssembledService

    /// Opens the database (failing at once when it cannot be used) and wires the parts together: the store, the
    /// consumer of `queue_order` applying each event, and the snapshot read API on the admin port.
    public init(configuration: OrderServiceConfiguration, logger: Logger) throws {
        var assembly = ServiceAssembly(http: configuration.http, logger: logger)
        let store: any SnapshotStore = try assembly.openDatabase(
            configuration.database, name: "orders", postgresMigrations: PostgresSnapshotStore.migrations,
            maximumConnections: 10,
            sqlite: { try SQLiteSnapshotStore(path: $0, logger: logger) },
            postgres: { PostgresSnapshotStore(database: $0, logger: logger) })
        let connections = assembly.consume(
            QueueName.order, service: "order-service", broker: configuration.broker, prefetch: configuration.prefetch)
        let applier = SnapshotApplier(store: store, logger: logger)
        assembly.deliver(
            connections, maxAttempts: configuration.maxAttempts, handler: applier.handle(_:),
            batchHandler: applier.handle(batch:))
        SnapshotAPI(store: store).register(in: &assembly.routes)
        assembly.addReadiness { Readiness(checks: ["database": await store.isHealthy()]) }
        service = assembly.build()
    }

    /// Everything to run, in stages; the database pool (PostgreSQL) starts first and stops last.
    public var services: ServiceStages { service.stages }

    /// The admin port, once listening.
    public func listeningPort() async throws -> Int {
        try await service.listeningPort()
    }
}
