import Common
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle

/// A small HTTP/1.1 server on SwiftNIO that answers requests with a ``Router``.
///
/// Each connection is served by its own task, which runs on the connection's event loop (so do the route handlers:
/// they must not block); requests on a connection (including pipelined ones) are answered in order. Run it in a
/// `ServiceGroup`: on graceful shutdown it stops accepting, lets in-flight requests finish (bounded by
/// ``HTTPServerConfiguration/shutdownGracePeriod``) and returns. Cancellation stops it at once.
public final class HTTPServer: Service, Sendable {
    /// One accepted TCP connection from an HTTP client: assembled requests in, responses out.
    private typealias ClientConnection = NIOAsyncChannel<AssembledRequest, HTTPResponse>

    private let configuration: HTTPServerConfiguration
    private let router: Router
    private let logger: Logger
    private let boundPort = BoundPort()

    /// Creates a server; nothing happens until ``run()``.
    public init(configuration: HTTPServerConfiguration, router: Router, logger: Logger) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
    }

    /// Binds and serves until cancelled or graceful shutdown; on graceful shutdown stops accepting, lets in-flight
    /// requests finish (bounded), then returns. Call it once.
    public func run() async throws {
        let budget = ConnectionBudget.split(
            configured: self.configuration.maxConnections,
            fileDescriptors: ConnectionBudget.raiseFileDescriptorLimit())
        if budget.served < self.configuration.maxConnections {
            self.logger.notice(
                "HTTP connection limit lowered to fit the open-file limit",
                metadata: ["configured": "\(self.configuration.maxConnections)", "max_connections": "\(budget.served)"])
        }
        let registry = ConnectionRegistry(maxServed: budget.served, maxRefusing: budget.refusing, logger: self.logger)
        let serverChannel: NIOAsyncChannel<ClientConnection, Never>
        do {
            serverChannel = try await self.bind(registry: registry)
        } catch {
            await self.boundPort.fail(error)
            throw error
        }
        let port = serverChannel.channel.localAddress?.port ?? self.configuration.port
        self.logger.info("HTTP server listening", metadata: ["host": "\(self.configuration.host)", "port": "\(port)"])
        await self.boundPort.resolve(port)

        try await withGracefulShutdownHandler {
            try await serverChannel.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        // The connection's task runs on its channel's event loop (see EventLoopTaskExecutor).
                        let executor = EventLoopTaskExecutor(connection.channel.eventLoop)
                        group.addTask(executorPreference: executor) { await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            // ClientConnectionTracker closes the listener and quiesces every connection.
            serverChannel.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        self.logger.info("HTTP server stopped")
    }

    /// Waits until the server is listening and returns the bound port (useful with port 0).
    ///
    /// - Throws: The error that made ``run()`` fail to bind.
    public func listeningPort() async throws -> Int {
        try await self.boundPort.value()
    }

    private func bind(registry: ConnectionRegistry) async throws -> NIOAsyncChannel<ClientConnection, Never> {
        let configuration = self.configuration
        let logger = self.logger
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ClientConnectionTracker(
                            registry: registry, gracePeriod: configuration.shutdownGracePeriod, logger: logger))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let admission = registry.admit(channel)
                    try channel.pipeline.syncOperations.addHandler(RequestBytesObserver())
                    var limits = NIOHTTPDecoderLimitConfiguration()
                    limits.maxHeaderFieldSize = configuration.maxHeaderSize
                    limits.maxHeaderListSize = configuration.maxHeaderSize
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true,
                        withErrorHandling: false,  // RequestAssemblyHandler answers parse errors with JSON
                        withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: limits)
                    try channel.pipeline.syncOperations.addHandler(
                        RequestAssemblyHandler(
                            limits: ConnectionLimits(configuration), admission: admission, registry: registry,
                            logger: logger))
                    return try ClientConnection(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Serves one connection until it closes; its errors end only this connection.
    private func serve(_ connection: ClientConnection) async {
        do {
            try await connection.executeThenClose { requests, responses in
                for try await request in requests {
                    try await responses.write(await self.respond(to: request))
                }
            }
        } catch {
            self.logger.debug("HTTP connection ended with an error", metadata: ["error": .untrusted(error)])
        }
    }

    /// Routes one request and turns every outcome, including errors, into a response.
    func respond(to assembled: AssembledRequest) async -> HTTPResponse {
        let start = ContinuousClock.now
        let method = assembled.head.method
        var pattern = "unmatched"
        var response: HTTPResponse
        do {
            var request = try HTTPRequest(head: assembled.head, body: Array(assembled.body.readableBytesView))
            guard let segments = HTTPRequest.segments(ofTarget: assembled.head.uri) else {
                throw HTTPError.badRequest("The request path has an invalid percent-encoding.")
            }
            switch self.router.match(method, segments: segments) {
            case .found(let route, let parameters):
                pattern = route.pattern
                request.pathParameters = parameters
                if route.acceptsJSON && !request.body.isEmpty && !Self.isJSON(request.headers) {
                    throw HTTPError(
                        .unsupportedMediaType, error: "unsupported_media_type",
                        detail: "The request body must have Content-Type application/json.")
                }
                response = try await route.handler(request)
            case .methodNotAllowed(let allowed):
                let allow = allowed.joined(separator: ", ")
                throw HTTPError(
                    .methodNotAllowed, error: "method_not_allowed",
                    detail: "\(method.rawValue) is not allowed on \(request.path); allowed: \(allow).",
                    headers: ["allow": allow])
            case .notFound:
                throw HTTPError(.notFound, error: "not_found", detail: "No resource at \(request.path).")
            }
        } catch let error as HTTPError {
            response = HTTPResponse(error: error)
        } catch {
            self.logger.error(
                "Request handler failed",
                metadata: ["method": .untrusted(method.rawValue), "route": "\(pattern)", "error": .untrusted(error)])
            response = HTTPResponse(error: .internalError)
        }
        let duration = start.duration(to: .now)
        self.logger.debug(
            "HTTP request",
            metadata: [
                "method": .untrusted(method.rawValue), "path": .untrusted(assembled.head.uri), "route": "\(pattern)",
                "status": "\(response.status.code)", "duration_ms": "\(Self.milliseconds(duration))",
            ])
        self.configuration.onResponse?(method, pattern, response.status, duration)
        return response
    }

    private static func isJSON(_ headers: HTTPHeaders) -> Bool {
        guard let contentType = headers["content-type"].first else { return false }
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return mediaType.trimmingCharacters(in: .whitespaces).lowercased() == "application/json"
    }

    private static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let ms = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        return String(format: "%.3f", ms)
    }
}

/// The port `run()` bound, for callers of `listeningPort()` that may ask before or after it is known.
private actor BoundPort {
    private enum State {
        case waiting([CheckedContinuation<Int, any Error>])
        case bound(Int)
        case failed(any Error)
    }

    private var state = State.waiting([])

    func value() async throws -> Int {
        switch self.state {
        case .bound(let port):
            return port
        case .failed(let error):
            throw error
        case .waiting(var waiters):
            return try await withCheckedThrowingContinuation { continuation in
                waiters.append(continuation)
                self.state = .waiting(waiters)
            }
        }
    }

    func resolve(_ port: Int) {
        guard case .waiting(let waiters) = self.state else { return }
        self.state = .bound(port)
        for waiter in waiters { waiter.resume(returning: port) }
    }

    func fail(_ error: any Error) {
        guard case .waiting(let waiters) = self.state else { return }
        self.state = .failed(error)
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}
