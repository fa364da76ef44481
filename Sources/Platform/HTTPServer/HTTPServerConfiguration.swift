public import NIOHTTP1

/// Settings for one ``HTTPServer``: where it listens, the limits it enforces and an optional metrics hook.
///
/// Build it at the edge of the program (flags, environment) and pass it in; the server reads nothing else.
public struct HTTPServerConfiguration: Sendable {
    /// Address to bind: `"127.0.0.1"` (the default) for this machine only, `"0.0.0.0"` for every IPv4 interface,
    /// `"::"` for every interface.
    public var host: String
    /// TCP port to bind; `0` lets the system pick a free one (see ``HTTPServer/listeningPort()``).
    public var port: Int
    /// Largest accepted request body in bytes; a larger one is answered 413 and the connection closed.
    public var maxBodySize: Int
    /// Largest accepted header section in bytes (names plus values); a larger one is answered 431 and the
    /// connection closed. A request target longer than this is answered 414.
    public var maxHeaderSize: Int
    /// Most connections served at once (lowered at start to fit the process's file descriptor limit). A new
    /// connection beyond it closes, to make room, a connection whose response is stalled (its client does not read),
    /// else the connection idle the longest; when there is neither (every one is in a request), the newcomer's
    /// request is answered 503 with `Retry-After` and the connection closed.
    public var maxConnections: Int
    /// A request's head must be complete within this time, counted from the accept (a new connection) or from the
    /// request's first byte (a kept-alive one); otherwise the connection is closed. Bounds slowloris clients.
    public var headTimeout: Duration
    /// A request's body must be complete within this time after its head; otherwise the connection is closed.
    public var bodyTimeout: Duration
    /// A kept-alive connection whose next request does not start within this time after a response is closed.
    public var idleTimeout: Duration
    /// A connection whose responses make no write progress for this long (the client does not read what it asked
    /// for, so the socket buffers stay full) is closed.
    public var writeTimeout: Duration
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
        host: String = "127.0.0.1",
        port: Int,
        maxBodySize: Int = 1 << 20,
        maxHeaderSize: Int = 16 << 10,
        maxConnections: Int = 1024,
        headTimeout: Duration = .seconds(10),
        bodyTimeout: Duration = .seconds(30),
        idleTimeout: Duration = .seconds(60),
        writeTimeout: Duration = .seconds(10),
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
        self.headTimeout = headTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.writeTimeout = writeTimeout
        self.shutdownGracePeriod = shutdownGracePeriod
        self.onResponse = onResponse
    }
}
