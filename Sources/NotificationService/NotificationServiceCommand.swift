public import ArgumentParser
import Foundation
import HTTPServer
import Logging
public import ServiceRuntime
import Messaging

/// `notification-service`: routes events from `queue_dispatch` to their destination queues.
public struct NotificationServiceCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "notification-service",
        abstract: "Forwards each event on queue_dispatch to the queues its routing table names.")

    @OptionGroup public var common: CommonOptions

    @OptionGroup public var consumer: ConsumerOptions

    @Option(name: .customLong("routing-table"), help: "YAML or JSON routing table file (env ROUTING_TABLE).")
    public var routingTable: String?

    public init() {}

    public func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var configuration: NotificationServiceConfiguration
        let logger: Logger
        let gracePeriod: Duration
        do {
            let consuming = try consumer.resolve(environment: environment)
            let settings = try common.resolve(defaultPort: 8002, environment: environment)
            var table = RoutingTable.standard
            let path = Setting.value(routingTable, env: "ROUTING_TABLE", in: environment)
            if let path {
                do {
                    table = try RoutingTable.load(path: path)
                } catch {
                    throw ConfigurationError(setting: "ROUTING_TABLE", problem: "\(path): \(error)")
                }
            }
            configuration = NotificationServiceConfiguration(
                http: HTTPServerConfiguration(port: settings.port), broker: settings.broker, routingTable: table)
            configuration.routingTablePath = path
            configuration.maxAttempts = consuming.maxAttempts
            configuration.prefetch = consuming.prefetch
            gracePeriod = settings.gracePeriod
            ServiceRunner.bootstrapLogging(level: settings.logLevel)
            logger = Logger(label: "notification-service")
        } catch let error as ConfigurationError {
            ServiceRunner.exit(configurationError: error)
        }
        logger.info(
            "starting",
            metadata: [
                "admin_port": "\(configuration.http.port)", "broker": "\(configuration.broker.redactedURL)",
                "routes": "\(configuration.routingTable.summary)",
            ])
        ServiceMetrics.bootstrap()
        let app = NotificationServiceApp(configuration: configuration, logger: logger)
        try await ServiceRunner.run(app.services, gracePeriod: gracePeriod, logger: logger)
    }
}
