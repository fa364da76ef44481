import Common
import ServiceKit
public import HTTPServer
public import Logging
public import Messaging
public import ServiceRuntime

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
    private let service: AssembledService

    /// Wires the consumer of `queue_dispatch`, the publisher to the destinations, the router between them, and the
    /// SIGHUP reloader of the routing table.
    public init(configuration: NotificationServiceConfiguration, logger: Logger) {
        var assembly = ServiceAssembly(http: configuration.http, logger: logger)
        let connections = assembly.consume(
            QueueName.dispatch, service: "notification-service",
            declaring: configuration.routingTable.allDestinations + [QueueName.unrouted], broker: configuration.broker,
            prefetch: configuration.prefetch)
        let table = CurrentRoutingTable(configuration.routingTable)
        let router = EventRouter(
            table: table, publisher: connections.publisher, sourceQueue: connections.queue, logger: logger)
        assembly.deliver(
            connections, maxAttempts: configuration.maxAttempts, handler: router.handle(_:),
            batchHandler: router.handle(batch:))
        if let path = configuration.routingTablePath {
            assembly.stages.listeners.append(
                RoutingTableReloader(path: path, current: table, publisher: connections.publisher, logger: logger))
        }
        service = assembly.build()
    }

    /// Everything to run, in stages.
    public var services: ServiceStages { service.stages }

    /// The admin port, once listening.
    public func listeningPort() async throws -> Int {
        try await service.listeningPort()
    }
}
