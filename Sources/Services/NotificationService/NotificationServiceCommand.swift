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
        try await ServiceRunner.serve(
            "notification-service", options: common, defaultPort: 8002,
            configure: { settings, environment in
                let consuming = try consumer.resolve(environment: environment)
                var table = RoutingTable.standard
                let path = Setting.value(routingTable, env: "ROUTING_TABLE", in: environment)
                if let path {
                    do {
                        table = try RoutingTable.load(path: path)
                    } catch {
                        throw ConfigurationError(setting: "ROUTING_TABLE", problem: "\(path): \(error)")
                    }
                }
                var configuration = NotificationServiceConfiguration(
                    http: settings.http, broker: settings.broker, routingTable: table)
                configuration.routingTablePath = path
                configuration.maxAttempts = consuming.maxAttempts
                configuration.prefetch = consuming.prefetch
                return configuration
            },
            describe: { ["admin_port": "\($0.http.port)", "routes": "\($0.routingTable.summary)"] },
            assemblySetting: "ROUTING_TABLE",
            assemble: { configuration, logger in
                NotificationServiceApp(configuration: configuration, logger: logger).services
            })
    }
}
