public import ArgumentParser
import Foundation
import HTTPServer
import Logging
public import ServiceRuntime
import Messaging

/// `user-service`: the HTTP API for users.
public struct UserServiceCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "user-service",
        abstract: "HTTP API for users; publishes user events to queue_dispatch through a transactional outbox.")

    @OptionGroup public var common: CommonOptions

    @Option(name: .customLong("db-url"), help: "sqlite:///path or a file path (env USER_DB_URL, default users.sqlite).")
    public var databaseURL: String?

    @Option(
        name: .customLong("outbox-keep-sent"),
        help: "Published outbox rows kept for inspection (env OUTBOX_KEEP_SENT, default 10000).")
    public var outboxKeepSent: String?

    public init() {}

    public func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var configuration: UserServiceConfiguration
        let logger: Logger
        let gracePeriod: Duration
        do {
            let settings = try common.resolve(defaultPort: 8000, environment: environment)
            let path = try Setting.sqlitePath(
                Setting.value(databaseURL, env: "USER_DB_URL", in: environment) ?? "users.sqlite",
                setting: "USER_DB_URL")
            configuration = UserServiceConfiguration(
                http: HTTPServerConfiguration(port: settings.port), databasePath: path, broker: settings.broker)
            configuration.outboxKeepSent = try Setting.positiveInteger(
                Setting.value(outboxKeepSent, env: "OUTBOX_KEEP_SENT", in: environment),
                setting: "OUTBOX_KEEP_SENT", default: 10_000)
            gracePeriod = settings.gracePeriod
            ServiceRunner.bootstrapLogging(level: settings.logLevel)
            logger = Logger(label: "user-service")
        } catch let error as ConfigurationError {
            ServiceRunner.exit(configurationError: error)
        }
        ServiceMetrics.bootstrap()
        let app: UserServiceApp
        do {
            app = try UserServiceApp(configuration: configuration, logger: logger)
        } catch {
            ServiceRunner.exit(configurationError: ConfigurationError(setting: "USER_DB_URL", problem: "\(error)"))
        }
        logger.info(
            "starting",
            metadata: [
                "port": "\(configuration.http.port)", "database": "\(configuration.databasePath)",
                "broker": "\(configuration.broker.redactedURL)",
            ])
        try await ServiceRunner.run(app.services, gracePeriod: gracePeriod, logger: logger)
    }
}
