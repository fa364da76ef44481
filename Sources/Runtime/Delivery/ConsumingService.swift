import Common
public import HTTPServer
public import Logging
public import Messaging
public import ServiceLifecycle
public import ServiceRuntime
import NIOHTTP1

/// The broker connections of a service that consumes one queue: a consumer of the queue, and a publisher that
/// declares `<queue>.dead` and the queues the service's handler publishes to.
///
/// Made first, so that the handler can publish through ``publisher``; then ``ConsumingService`` runs the handler.
public struct ConsumerConnections: Sendable {
    /// The queue consumed.
    public let queue: String
    /// The publisher connection, named `<service> publisher`; dead letters go through it too.
    public let publisher: Publisher
    /// The consumer connection, named `<service> consumer`.
    let consumer: Consumer
    /// Deliveries the broker may push before they are acked; the delivery loop handles as many at once.
    let prefetch: UInt16

    /// Creates both connections (nothing connects until they run). `declaring` lists the queues the handler
    /// publishes to; `<queue>.dead` is declared after them.
    public init(
        service name: String, queue: String, declaring: [String] = [], broker: BrokerConfiguration, prefetch: UInt16,
        logger: Logger
    ) {
        var publishing = broker
        publishing.connectionName = "\(name) publisher"
        var consuming = broker
        consuming.connectionName = "\(name) consumer"
        self.queue = queue
        self.prefetch = prefetch
        publisher = Publisher(
            configuration: publishing, declaring: declaring + [QueueName.deadLetter(for: queue)], logger: logger)
        consumer = Consumer(configuration: consuming, queue: queue, prefetch: prefetch, logger: logger)
    }

    /// Whether both connections are up.
    var isConnected: Bool { publisher.isConnected && consumer.isConnected }
}

/// A service that consumes one queue, assembled: its two connections, a ``DeliveryLoop`` over its handler, and the
/// admin HTTP server with `/healthz`, `/readyz` (the broker, the service's own checks, and a dependency the loop
/// found unavailable, with the reason), `/metrics` and the service's own routes.
public struct ConsumingService: Sendable {
    /// Everything to run, in stages: connections, the delivery loop, the admin server and `listeners`.
    public let stages: ServiceStages
    private let server: HTTPServer

    /// Wires the loop and the admin server.
    ///
    /// - Parameters:
    ///   - connections: The connections the handler was made with.
    ///   - maxAttempts: Attempts to process a message before it moves to `<queue>.dead`.
    ///   - http: The admin listener; every answered request is recorded in the metrics.
    ///   - routes: Adds the service's own routes to the admin router.
    ///   - checks: The service's own readiness checks (e.g. `database`), beside `broker`.
    ///   - listeners: More services that take input from outside, stopped first with the server (e.g. a SIGHUP
    ///     handler).
    ///   - handler: Handles each delivery; see ``DeliveryLoop``.
    ///   - batchHandler: Handles a batch of deliveries at once, if given; see ``DeliveryLoop``.
    public init(
        _ connections: ConsumerConnections, maxAttempts: Int, http: HTTPServerConfiguration, logger: Logger,
        routes: (inout Router) -> Void = { _ in }, checks: @escaping @Sendable () async -> [String: Bool] = { [:] },
        listeners: [any Service] = [], handler: @escaping DeliveryLoop.Handler,
        batchHandler: DeliveryLoop.BatchHandler? = nil
    ) {
        let loop = DeliveryLoop(
            queue: connections.queue, consumer: connections.consumer, publisher: connections.publisher,
            concurrency: Int(connections.prefetch), maxAttempts: maxAttempts, logger: logger, handler: handler,
            batchHandler: batchHandler)
        var admin = Router()
        routes(&admin)
        admin.addHealthRoutes {
            var report = await checks().merging(["broker": connections.isConnected]) { $1 }
            var reasons: [String: String] = [:]
            // Paused deliveries say which dependency is down and why, whatever the service's own check saw.
            if let fault = loop.unavailableDependency {
                report[fault.dependency] = false
                reasons[fault.dependency] = fault.reason
            }
            return Readiness(checks: report, reasons: reasons)
        }
        admin.addMetricsRoute()
        server = HTTPServer(configuration: http.recordingMetrics(), router: admin, logger: logger)
        stages = ServiceStages(
            connections: [connections.publisher, connections.consumer], workers: [loop], listeners: [server] + listeners)
    }

    /// The admin port, once listening.
    public func listeningPort() async throws -> Int {
        try await server.listeningPort()
    }
}
