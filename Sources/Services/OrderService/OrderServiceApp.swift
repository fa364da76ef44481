import Common
import Delivery
public import HTTPServer
import PostgresStorage
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
    private let service: ConsumingService
    private let databaseServices: [any Service]

    /// Opens the database (failing at once when it cannot be used) and wires the parts together.
    public init(configuration: OrderServiceConfiguration, logger: Logger) throws {
        let store: any SnapshotStore
        switch configuration.database {
        case .sqlite(let path):
            store = try SQLiteSnapshotStore(path: path, logger: logger)
            databaseServices = []
        case .postgres(let location):
            let database = PostgresPool(
                endpoint: PostgresEndpoint(location), name: "orders", migrations: PostgresSnapshotStore.migrations,
                maximumConnections: 10, logger: logger)
            store = PostgresSnapshotStore(database: database, logger: logger)
            databaseServices = [database]
        }
        let connections = ConsumerConnections(
            service: "order-service", queue: QueueName.order, broker: configuration.broker,
            prefetch: configuration.prefetch, logger: logger)
        let applier = SnapshotApplier(store: store, logger: logger)
        service = ConsumingService(
            connections, maxAttempts: configuration.maxAttempts, http: configuration.http, logger: logger,
            routes: { SnapshotAPI(store: store).register(in: &$0) },
            checks: { ["database": await store.isHealthy()] },
            handler: applier.handle(_:), batchHandler: applier.handle(batch:))
    }

    /// Everything to run, in stages; the database pool (PostgreSQL) starts first and stops last.
    public var services: ServiceStages {
        var stages = service.stages
        stages.connections.insert(contentsOf: databaseServices, at: 0)
        return stages
    }

    /// The admin port, once listening.
    public func listeningPort() async throws -> Int {
        try await service.listeningPort()
    }
}

extension PostgresEndpoint {
    /// The endpoint a `postgres://` setting names.
    init(_ location: PostgresLocation) {
        self.init(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: TLSMode(rawValue: location.sslMode) ?? .prefer)
    }
}
