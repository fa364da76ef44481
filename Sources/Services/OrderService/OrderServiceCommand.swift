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
        abstract: "Consumes queue_order and keeps a snapshot of each user in its own database (SQLite or PostgreSQL).")

    @OptionGroup public var common: CommonOptions

    @OptionGroup public var consumer: ConsumerOptions

    @Option(name: .customLong("db-url"), help: "postgres://user:password@host:port/database, sqlite:///path or a file path (env ORDER_DB_URL, default orders.sqlite).")
    public var databaseURL: String?

    public init() {}

    public func run() async throws {
        try await ServiceRunner.serve(
            "order-service", options: common, defaultPort: 8001,
            configure: { settings, environment in
                let consuming = try consumer.resolve(environment: environment)
                let database = try Setting.database(
                    Setting.value(databaseURL, env: "ORDER_DB_URL", in: environment) ?? "orders.sqlite",
                    setting: "ORDER_DB_URL")
                var configuration = OrderServiceConfiguration(
                    http: settings.http, database: database, broker: settings.broker)
                configuration.maxAttempts = consuming.maxAttempts
                configuration.prefetch = consuming.prefetch
                return configuration
            },
            describe: { ["admin_port": "\($0.http.port)", "database": "\($0.database)"] },
            assemblySetting: "ORDER_DB_URL",
            assemble: { configuration, logger in
                try OrderServiceApp(configuration: configuration, logger: logger).services
            })
    }
}
