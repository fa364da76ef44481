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

    @Option(name: .customLong("db-url"), help: "postgres://user:password@host:port/database, sqlite:///path or a file path (env USER_DB_URL, default users.sqlite).")
    public var databaseURL: String?

    @Option(
        name: .customLong("outbox-keep-sent"),
        help: "Published outbox rows kept for inspection (env OUTBOX_KEEP_SENT, default 10000).")
    public var outboxKeepSent: String?

    public init() {}

    public func run() async throws {
        try await ServiceRunner.serve(
            "user-service", options: common, defaultPort: 8000, defaultHost: Setting.everyInterface,
            configure: { settings, environment in
                let database = try Setting.database(
                    Setting.value(databaseURL, env: "USER_DB_URL", in: environment) ?? "users.sqlite",
                    setting: "USER_DB_URL")
                var configuration = UserServiceConfiguration(
                    http: settings.http, database: database, broker: settings.broker)
                configuration.outboxKeepSent = try Setting.positiveInteger(
                    Setting.value(outboxKeepSent, env: "OUTBOX_KEEP_SENT", in: environment),
                    setting: "OUTBOX_KEEP_SENT", default: 10_000)
                return configuration
            },
            describe: { ["host": "\($0.http.host)", "port": "\($0.http.port)", "database": "\($0.database)"] },
            assemblySetting: "USER_DB_URL",
            assemble: { configuration, logger in
                try UserServiceApp(configuration: configuration, logger: logger).services
            })
    }
}
