import Common
public import HTTPServer
import PostgresStorage
import ServiceKit
import ServiceLifecycle
public import Logging
public import Messaging
public import ServiceRuntime

/// Everything the user service needs to start.
public struct UserServiceConfiguration: Sendable {
    /// The HTTP listener (default port 8000).
    public var http: HTTPServerConfiguration
    /// The database holding users and the outbox: an SQLite file, or PostgreSQL (shared by several instances).
    public var database: DatabaseLocation
    /// The broker to publish to.
    public var broker: BrokerConfiguration
    /// Published outbox rows kept for inspection before older ones are pruned.
    public var outboxKeepSent = 10_000

    /// Creates a configuration.
    public init(http: HTTPServerConfiguration, database: DatabaseLocation, broker: BrokerConfiguration) {
        self.http = http
        self.database = database
        self.broker = broker
    }

    /// Creates a configuration with the users in the SQLite file at `databasePath`.
    public init(http: HTTPServerConfiguration, databasePath: String, broker: BrokerConfiguration) {
        self.init(http: http, database: .sqlite(path: databasePath), broker: broker)
    }
}

/// The user service, assembled: its database is open, its services are ready to run.
public struct UserServiceApp: Sendable {
    private let service: AssembledService

    /// Opens the database (failing at once when it cannot be used) and wires the parts together: the store and its
    /// outbox, the publisher and the relay that publishes the outbox, and the user API.
    public init(configuration: UserServiceConfiguration, logger: Logger) throws {
        var assembly = ServiceAssembly(http: configuration.http, logger: logger)
        let keep = configuration.outboxKeepSent
        let (store, outbox): (any UserStore, any Outbox) = try assembly.openDatabase(
            configuration.database, name: "users", postgresMigrations: PostgresUserStore.migrations,
            sqlite: { path in
                let store = try SQLiteUserStore(path: path, keptSentRows: keep, logger: logger)
                return (store, store.outbox)
            },
            postgres: { pool in
                let store = PostgresUserStore(database: pool, keptSentRows: keep, logger: logger)
                return (store, store.outbox)
            })
        var brokerConfiguration = configuration.broker
        brokerConfiguration.connectionName = "user-service publisher"
        let publisher = Publisher(configuration: brokerConfiguration, declaring: [QueueName.dispatch], logger: logger)
        let relay = OutboxRelay(outbox: outbox, publisher: publisher, logger: logger)
        assembly.stages.connections.append(publisher)
        assembly.stages.workers.append(relay)
        UserAPI(store: store, logger: logger).register(in: &assembly.routes)
        assembly.addReadiness {
            let backlog = try? await outbox.backlog()
            let setAside = try? await outbox.setAsideCount()
            // Rows set aside do not make the service unready: everything else flows, and they wait for an operator.
            return Readiness(
                checks: ["broker": publisher.isConnected, "database": backlog != nil],
                gauges: [
                    "outbox_backlog": backlog ?? -1, "outbox_set_aside": setAside ?? -1,
                    "outbox_relay": relay.isRelaying ? 1 : 0,
                ])
        }
        service = assembly.build()
    }

    /// The services to run: the database pool (PostgreSQL) and the publisher's connection, the outbox relay, the HTTP
    /// server (which stops first).
    public var services: ServiceStages { service.stages }

    /// The port the HTTP server listens on, once it does.
    public func listeningPort() async throws -> Int {
        try await service.listeningPort()
    }
}
