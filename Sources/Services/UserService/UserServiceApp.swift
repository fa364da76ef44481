import Common
public import HTTPServer
import PostgresStorage
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
    /// The services to run: the database pool (PostgreSQL) and the publisher's connection, the outbox relay, the HTTP
    /// server (which stops first).
    public let services: ServiceStages
    private let server: HTTPServer

    /// Opens the database (failing at once when it cannot be used) and wires the parts together.
    public init(configuration: UserServiceConfiguration, logger: Logger) throws {
        var brokerConfiguration = configuration.broker
        brokerConfiguration.connectionName = "user-service publisher"
        let store: any UserStore
        let outbox: any Outbox
        var databaseServices: [any Service] = []
        switch configuration.database {
        case .sqlite(let path):
            let sqlite = try SQLiteUserStore(path: path, keptSentRows: configuration.outboxKeepSent, logger: logger)
            store = sqlite
            outbox = sqlite.outbox
        case .postgres(let location):
            let database = PostgresPool(
                endpoint: PostgresEndpoint(location), name: "users", migrations: PostgresUserStore.migrations,
                logger: logger)
            let postgres = PostgresUserStore(database: database, keptSentRows: configuration.outboxKeepSent, logger: logger)
            store = postgres
            outbox = postgres.outbox
            databaseServices = [database]
        }
        let publisher = Publisher(configuration: brokerConfiguration, declaring: [QueueName.dispatch], logger: logger)
        let relay = OutboxRelay(outbox: outbox, publisher: publisher, logger: logger)
        let router = Self.router(api: UserAPI(store: store, logger: logger)) {
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
        server = HTTPServer(configuration: configuration.http.recordingMetrics(), router: router, logger: logger)
        services = ServiceStages(connections: databaseServices + [publisher], workers: [relay], listeners: [server])
    }

    /// Every route the service serves: the user API and its document, health and metrics.
    static func router(api: UserAPI, readiness: @escaping @Sendable () async -> Readiness) -> Router {
        var router = Router()
        api.register(in: &router)
        router.addHealthRoutes(readiness: readiness)
        router.addMetricsRoute()
        return router
    }

    /// The port the HTTP server listens on, once it does.
    public func listeningPort() async throws -> Int {
        try await server.listeningPort()
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
