import Common
public import HTTPServer
public import Logging
public import Messaging
public import ServiceLifecycle
import Delivery
import ServiceRuntime

/// Everything the notification service needs to start.
public struct NotificationServiceConfiguration: Sendable {
    /// The admin HTTP listener (default port 8002).
    public var http: HTTPServerConfiguration
    /// The broker.
    public var broker: BrokerConfiguration
    /// Where each event type goes.
    public var routingTable: RoutingTable
    /// The file `routingTable` came from, reloaded on SIGHUP; nil for the built-in table.
    public var routingTablePath: String?
    /// Deliveries the broker may push before they are acked.
    public var prefetch: UInt16 = 256
    /// Attempts to process a message before it moves to the dead-letter queue.
    public var maxAttempts = 5

    /// Creates a configuration.
    public init(http: HTTPServerConfiguration, broker: BrokerConfiguration, routingTable: RoutingTable = .standard) {
        self.http = http
        self.broker = broker
        self.routingTable = routingTable
    }
}

/// The notification service, assembled.
public struct NotificationServiceApp: Sendable {
    /// Run these in a `ServiceGroup`, in this order.
    public let services: [any Service]
    private let server: HTTPServer

    /// Wires the consumer of `queue_dispatch`, the publisher to the destinations and the admin endpoints.
    public init(configuration: NotificationServiceConfiguration, logger: Logger) {
        let source = QueueName.dispatch
        var publishing = configuration.broker
        publishing.connectionName = "notification-service publisher"
        var consuming = configuration.broker
        consuming.connectionName = "notification-service consumer"
        let publisher = Publisher(
            configuration: publishing,
            declaring: configuration.routingTable.allDestinations + [QueueName.unrouted, QueueName.deadLetter(for: source)],
            logger: logger)
        let consumer = Consumer(
            configuration: consuming, queue: source, prefetch: configuration.prefetch, logger: logger)
        let table = CurrentRoutingTable(configuration.routingTable)
        let router = EventRouter(table: table, publisher: publisher, sourceQueue: source, logger: logger)
        let loop = DeliveryLoop(
            queue: source, consumer: consumer, publisher: publisher, concurrency: Int(configuration.prefetch), maxAttempts: configuration.maxAttempts,
            logger: logger, handler: router.handle)
        var admin = Router()
        admin.addHealthRoutes {
            Readiness(checks: ["broker": publisher.isConnected && consumer.isConnected])
        }
        admin.addMetricsRoute()
        server = HTTPServer(configuration: configuration.http.recordingMetrics(), router: admin, logger: logger)
        var services: [any Service] = [publisher, consumer, loop, server]
        if let path = configuration.routingTablePath {
            services.append(RoutingTableReloader(path: path, current: table, publisher: publisher, logger: logger))
        }
        self.services = services
    }

    /// The admin port, once listening.
    public func listeningPort() async throws -> Int {
        try await server.listeningPort()
    }
}
