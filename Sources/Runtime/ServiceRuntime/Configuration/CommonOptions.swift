public import ArgumentParser
public import Foundation
public import HTTPServer
public import Logging
public import Messaging

/// Flags every service accepts. Each overrides an environment variable of the same meaning.
public struct CommonOptions: ParsableArguments, Sendable {
    @Option(name: .long, help: "HTTP port; 0 picks a free one (env HTTP_PORT).")
    public var port: String?

    @Option(
        name: .long,
        help: "Address the HTTP listener binds, e.g. 0.0.0.0 for every interface (env HTTP_HOST; default 0.0.0.0 for user-service, 127.0.0.1 for the consumers' admin ports).")
    public var host: String?

    @Option(
        name: .customLong("rabbitmq-url"),
        help: "amqp://user:pass@host:port/vhost, or one per cluster node, comma-separated (env RABBITMQ_URL).")
    public var rabbitmqURL: String?

    /// `classic` or `quorum`: the type of every queue the service declares.
    @Option(
        name: .customLong("amqp-queue-type"),
        help: "classic or quorum: the type of every queue declared (env AMQP_QUEUE_TYPE, default classic).")
    public var amqpQueueType: String?

    @Option(name: .customLong("heartbeat"), help: "AMQP heartbeat in seconds (env AMQP_HEARTBEAT, default 30).")
    public var heartbeat: String?

    /// Seconds a publisher waits for a broker confirm before it reconnects to the next node.
    @Option(
        name: .customLong("amqp-confirm-timeout"),
        help: "Seconds a publish waits for its confirm before the connection is given up for the next node; 0 waits forever (env AMQP_CONFIRM_TIMEOUT, default 5).")
    public var amqpConfirmTimeout: String?

    @Option(
        name: .customLong("shutdown-grace"),
        help: "Seconds to finish in-flight work on SIGTERM/SIGINT (env SHUTDOWN_GRACE_SECONDS, default 10).")
    public var shutdownGrace: String?

    /// PEM file of CA certificates trusted for `amqps://` instead of the system's.
    @Option(name: .customLong("amqp-ca-file"), help: "PEM CA file trusted for amqps:// (env AMQP_CA_FILE).")
    public var amqpCAFile: String?

    /// PEM client certificate presented over `amqps://`.
    @Option(
        name: .customLong("amqp-client-cert"),
        help: "PEM client certificate for amqps://, with --amqp-client-key (env AMQP_CLIENT_CERT).")
    public var amqpClientCertificate: String?

    /// PEM private key (unencrypted) of the client certificate.
    @Option(
        name: .customLong("amqp-client-key"),
        help: "PEM unencrypted key of the client certificate (env AMQP_CLIENT_KEY).")
    public var amqpClientKey: String?

    /// Seconds a response may make no write progress (its client does not read) before its connection is closed.
    @Option(
        name: .customLong("http-write-timeout"),
        help: "Seconds a response may make no write progress (the client does not read) before the connection is closed (env HTTP_WRITE_TIMEOUT, default 10).")
    public var httpWriteTimeout: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error (env LOG_LEVEL).")
    public var logLevel: String?

    public init() {}

    /// The resolved settings, or the first invalid one. `defaultHost` is the service's exposure when `HTTP_HOST` is
    /// not set: `0.0.0.0` for a public API, `127.0.0.1` (the default) for an admin port.
    public func resolve(
        defaultPort: Int, defaultHost: String = Setting.loopback,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> CommonSettings {
        let port = try Setting.port(
            Setting.value(port, env: "HTTP_PORT", in: environment), setting: "HTTP_PORT", default: defaultPort)
        let host = try Setting.host(
            Setting.value(host, env: "HTTP_HOST", in: environment), setting: "HTTP_HOST", default: defaultHost)
        let broker = try Setting.broker(
            Setting.value(rabbitmqURL, env: "RABBITMQ_URL", in: environment),
            heartbeat: Setting.value(heartbeat, env: "AMQP_HEARTBEAT", in: environment),
            caFile: Setting.value(amqpCAFile, env: "AMQP_CA_FILE", in: environment),
            clientCertificate: Setting.value(amqpClientCertificate, env: "AMQP_CLIENT_CERT", in: environment),
            clientKey: Setting.value(amqpClientKey, env: "AMQP_CLIENT_KEY", in: environment),
            queueType: Setting.value(amqpQueueType, env: "AMQP_QUEUE_TYPE", in: environment),
            confirmTimeout: Setting.value(amqpConfirmTimeout, env: "AMQP_CONFIRM_TIMEOUT", in: environment))
        let level = try Setting.logLevel(Setting.value(logLevel, env: "LOG_LEVEL", in: environment))
        let grace = try Setting.positiveInteger(
            Setting.value(shutdownGrace, env: "SHUTDOWN_GRACE_SECONDS", in: environment),
            setting: "SHUTDOWN_GRACE_SECONDS", default: 10)
        let writeTimeout = try Setting.positiveInteger(
            Setting.value(httpWriteTimeout, env: "HTTP_WRITE_TIMEOUT", in: environment),
            setting: "HTTP_WRITE_TIMEOUT", default: 10)
        var connections = broker
        connections.shutdownTimeout = ServiceRunner.connectionShutdownTimeout(gracePeriod: .seconds(grace))
        return CommonSettings(
            host: host, port: port, broker: connections, logLevel: level, gracePeriod: .seconds(grace),
            httpWriteTimeout: .seconds(writeTimeout))
    }
}

/// The settings every service resolves from `CommonOptions`.
public struct CommonSettings: Sendable {
    /// The address the HTTP listener binds.
    public var host: String
    /// The HTTP port.
    public var port: Int
    /// The broker.
    public var broker: BrokerConfiguration
    /// The log level.
    public var logLevel: Logger.Level
    /// How long a graceful shutdown may take.
    public var gracePeriod: Duration
    /// How long a response may make no write progress before its connection is closed.
    public var httpWriteTimeout: Duration

    /// The HTTP listener's configuration: `host`, `port` and the write timeout, the server's default limits.
    public var http: HTTPServerConfiguration {
        HTTPServerConfiguration(host: host, port: port, writeTimeout: httpWriteTimeout)
    }
}
