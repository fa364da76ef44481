import Common
public import HTTPServer
public import Logging
public import Messaging
public import ServiceRuntime

/// Everything the user service needs to start.
public struct UserServiceConfiguration: Sendable {
    /// The HTTP listener (default port 8000).
    public var http: HTTPServerConfiguration
    /// The SQLite file holding users and the outbox.
    public var databasePath: String
    /// The broker to publish to.
    public var broker: BrokerConfiguration
    /// Published outbox rows kept for inspection before older ones are pruned.
    public var outboxKeepSent = 10_000

    /// Creates a configuration.
    public init(http: HTTPServerConfiguration, databasePath: String, broker: BrokerConfiguration) {
        self.http = http
        self.databasePath = databasePath
        self.broker = broker
    }
}

/// The user service, assembled: its database is open, its services are ready to run.
public struct UserServiceApp: Sendable {
    /// The services to run: the publisher's connection, the outbox relay, the HTTP server (which stops first).
    public let services: ServiceStages
    private let server: HTTPServer

    /// Opens the database (failing at once when it cannot be used) and wires the parts together.
    public init(configuration: UserServiceConfiguration, logger: Logger) throws {
        var brokerConfiguration = configuration.broker
        brokerConfiguration.connectionName = "user-service publisher"
        let store = try SQLiteUserStore(
            path: configuration.databasePath, keptSentRows: configuration.outboxKeepSent, logger: logger)
        let outbox = store.outbox
        let publisher = Publisher(configuration: brokerConfiguration, declaring: [QueueName.dispatch], logger: logger)
        let relay = OutboxRelay(outbox: outbox, publisher: publisher, logger: logger)
        let router = Self.router(api: UserAPI(store: store, logger: logger)) {
            let backlog = try? await outbox.backlog()
            return Readiness(
                checks: ["broker": publisher.isConnected, "database": backlog != nil],
                gauges: ["outbox_backlog": backlog ?? -1])
        }
        server = HTTPServer(configuration: configuration.http.recordingMetrics(), router: router, logger: logger)
        services = ServiceStages(connections: [publisher], workers: [relay], listeners: [server])
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
