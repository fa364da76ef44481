public import ArgumentParser
import Foundation
import HTTPServer
import Logging
public import ServiceRuntime
import Messaging

/// `order-service`: keeps a snapshot of every user from the events on `queue_order`.
public struct OrderServiceCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "order-service",
        abstract: "Consumes queue_order and keeps a snapshot of each user in its own SQLite database.")

    @OptionGroup public var common: CommonOptions

    @OptionGroup public var consumer: ConsumerOptions

    @Option(name: .customLong("db-url"), help: "sqlite:///path or a file path (env ORDER_DB_URL, default orders.sqlite).")
    public var databaseURL: String?

    public init() {}

    public func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var configuration: OrderServiceConfiguration
        let logger: Logger
        let gracePeriod: Duration
        do {
            let consuming = try consumer.resolve(environment: environment)
            let settings = try common.resolve(defaultPort: 8001, environment: environment)
            let path = try Setting.sqlitePath(
                Setting.value(databaseURL, env: "ORDER_DB_URL", in: environment) ?? "orders.sqlite",
                setting: "ORDER_DB_URL")
            configuration = OrderServiceConfiguration(
                http: HTTPServerConfiguration(port: settings.port), databasePath: path, broker: settings.broker)
            configuration.maxAttempts = consuming.maxAttempts
            configuration.prefetch = consuming.prefetch
            gracePeriod = settings.gracePeriod
            ServiceRunner.bootstrapLogging(level: settings.logLevel)
            logger = Logger(label: "order-service")
        } catch let error as ConfigurationError {
            ServiceRunner.exit(configurationError: error)
        }
        ServiceMetrics.bootstrap()
        let app: OrderServiceApp
        do {
            app = try OrderServiceApp(configuration: configuration, logger: logger)
        } catch {
            ServiceRunner.exit(configurationError: ConfigurationError(setting: "ORDER_DB_URL", problem: "\(error)"))
        }
        logger.info(
            "starting",
            metadata: [
                "admin_port": "\(configuration.http.port)", "database": "\(configuration.databasePath)",
                "broker": "\(configuration.broker.redactedURL)",
            ])
        try await ServiceRunner.run(app.services, gracePeriod: gracePeriod, logger: logger)
    }
}
