public import NIOHTTP1

/// Settings for one ``HTTPServer``: where it listens, the limits it enforces and an optional metrics hook.
///
/// Build it at the edge of the program (flags, environment) and pass it in; the server reads nothing else.
public struct HTTPServerConfiguration: Sendable {
    /// Address to bind, `"0.0.0.0"` for every IPv4 interface.
    public var host: String
    /// TCP port to bind; `0` lets the system pick a free one (see ``HTTPServer/listeningPort()``).
    public var port: Int
    /// Largest accepted request body in bytes; a larger one is answered 413 and the connection closed.
    public var maxBodySize: Int
    /// Largest accepted header section in bytes (names plus values); a larger one is answered 431 and the
    /// connection closed. A request target longer than this is answered 414.
    public var maxHeaderSize: Int
    /// Most connections served at once; connections beyond it are closed as soon as they are accepted.
    public var maxConnections: Int
    /// A connection that has not completed a request within this time (since it opened or since its previous
    /// response) is closed. Bounds slow or silent clients.
    public var idleTimeout: Duration
    /// On graceful shutdown, how long connections may take to finish their in-flight requests before they are
    /// closed anyway.
    public var shutdownGracePeriod: Duration
    /// Called once per request answered by a route handler or the router (not for requests rejected while
    /// parsing) with the method, the matched route pattern (or `"unmatched"`), the status and the handling time.
    /// Runs on the connection's task: keep it fast and non-blocking.
    public var onResponse:
        (@Sendable (_ method: HTTPMethod, _ routePattern: String, _ status: HTTPResponseStatus, _ duration: Duration)
            -> Void)?

    /// Creates a configuration; every limit has a default suitable for a small JSON API.
    public init(
        host: String = "0.0.0.0",
        port: Int,
        maxBodySize: Int = 1 << 20,
        maxHeaderSize: Int = 16 << 10,
        maxConnections: Int = 1024,
        idleTimeout: Duration = .seconds(30),
        shutdownGracePeriod: Duration = .seconds(10),
        onResponse: (
            @Sendable (_ method: HTTPMethod, _ routePattern: String, _ status: HTTPResponseStatus, _ duration: Duration)
                -> Void
        )? = nil
    ) {
        self.host = host
        self.port = port
        self.maxBodySize = maxBodySize
        self.maxHeaderSize = maxHeaderSize
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
        self.shutdownGracePeriod = shutdownGracePeriod
        self.onResponse = onResponse
    }
}
