public import Delivery
public import HTTPServer
public import Logging
public import Messaging
public import PostgresStorage
public import ServiceLifecycle
public import ServiceRuntime

/// The one way a service process is put together: every service's `App` is a short list of its parts added here,
/// and ``build()`` adds what every process has (the HTTP server with `/healthz`, `/readyz` and `/metrics`, requests
/// recorded in the metrics) and groups the parts in ``ServiceStages`` for ``ServiceRunner``.
public struct ServiceAssembly {
    /// The logger every part logs to.
    let logger: Logger
    /// The process's parts, in their stages.
    public var stages = ServiceStages()
    /// The routes of the service's HTTP server, besides health and metrics.
    public var routes = Router()
    private let http: HTTPServerConfiguration
    private var readiness: [@Sendable () async -> Readiness] = []

    /// Starts assembling a service whose HTTP server listens as `http` says.
    public init(http: HTTPServerConfiguration, logger: Logger) {
        self.http = http
        self.logger = logger
    }

    /// Opens the database `location` names: an SQLite file through `sqlite` (failing at once when it cannot be
    /// used), or PostgreSQL through `postgres` with a pool of at most `maximumConnections` whose schema is
    /// `postgresMigrations`; the pool runs first and stops last. `name` names the database in the pool's logs and
    /// migration lock.
    public mutating func openDatabase<Store>(
        _ location: DatabaseLocation, name: String, postgresMigrations: [[String]], maximumConnections: Int = 20,
        sqlite: (_ path: String) throws -> Store, postgres: (PostgresPool) -> Store
    ) throws -> Store {
        switch location {
        case .sqlite(let path):
            return try sqlite(path)
        case .postgres(let endpoint):
            let pool = PostgresPool(
                endpoint: endpoint, name: name, migrations: postgresMigrations, maximumConnections: maximumConnections,
                logger: logger)
            stages.connections.insert(pool, at: 0)
            return postgres(pool)
        }
    }

    /// Connects `service` to `queue`: a consumer, and a publisher that declares `declaring` and `<queue>.dead`.
    /// Returns them, so that the handler can publish; ``deliver(_:maxAttempts:handler:batchHandler:)`` runs it.
    public mutating func consume(
        _ queue: String, service: String, declaring: [String] = [], broker: BrokerConfiguration, prefetch: UInt16
    ) -> ConsumerConnections {
        let connections = ConsumerConnections(
            service: service, queue: queue, declaring: declaring, broker: broker, prefetch: prefetch, logger: logger)
        stages.connections += [connections.publisher, connections.consumer]
        addReadiness { Readiness(checks: ["broker": connections.isConnected]) }
        return connections
    }

    /// Runs `handler` (and `batchHandler`, if any) for every delivery of `connections`, in a ``DeliveryLoop``; a
    /// dependency the loop finds unavailable shows in `/readyz` with the reason.
    public mutating func deliver(
        _ connections: ConsumerConnections, maxAttempts: Int, handler: @escaping DeliveryLoop.Handler,
        batchHandler: DeliveryLoop.BatchHandler? = nil
    ) {
        let loop = DeliveryLoop(
            queue: connections.queue, consumer: connections.consumer, publisher: connections.publisher,
            concurrency: Int(connections.prefetch), maxAttempts: maxAttempts, logger: logger, handler: handler,
            batchHandler: batchHandler)
        stages.workers.append(loop)
        addReadiness {
            // Paused deliveries say which dependency is down and why, whatever the service's own check saw.
            guard let fault = loop.unavailableDependency else { return Readiness(checks: [:]) }
            return Readiness(checks: [fault.dependency: false], reasons: [fault.dependency: fault.reason])
        }
    }

    /// Adds to what `/readyz` reports; reports are merged, a failed check winning over a passed one of the same name.
    public mutating func addReadiness(_ report: @escaping @Sendable () async -> Readiness) {
        readiness.append(report)
    }

    /// Every route the service's HTTP server serves: the service's own, then `/healthz`, `/readyz` (the reports
    /// added, merged) and `/metrics`.
    public func router() -> Router {
        var router = routes
        let reports = readiness
        router.addHealthRoutes {
            var merged = Readiness(checks: [:])
            for report in reports {
                let part = await report()
                merged.checks.merge(part.checks) { $0 && $1 }
                merged.gauges.merge(part.gauges) { $1 }
                merged.reasons.merge(part.reasons) { $1 }
            }
            return merged
        }
        router.addMetricsRoute()
        return router
    }

    /// The assembled service: its HTTP server (serving ``router()``, every request recorded in the metrics) is the
    /// first listener, stopped first.
    public func build() -> AssembledService {
        let server = HTTPServer(configuration: http.recordingMetrics(), router: router(), logger: logger)
        var stages = stages
        stages.listeners.insert(server, at: 0)
        return AssembledService(stages: stages, server: server)
    }
}

/// A service put together by ``ServiceAssembly``, ready to run.
public struct AssembledService: Sendable {
    /// Everything to run, in stages.
    public let stages: ServiceStages
    private let server: HTTPServer

    init(stages: ServiceStages, server: HTTPServer) {
        self.stages = stages
        self.server = server
    }

    /// The HTTP server's port, once listening.
    public func listeningPort() async throws -> Int {
        try await server.listeningPort()
    }
}
