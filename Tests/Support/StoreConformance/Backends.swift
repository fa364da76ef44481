import DatabaseTestSupport
import Foundation
import Logging
import PostgresNIO
public import PostgresStorage
import ServiceLifecycle
import SQLiteStorage
import TestSupport

@testable import OrderService
@testable import UserService

/// The database engines the stores run on. The conformance suites run every case against each.
public enum StoreBackend: String, Sendable, CaseIterable, CustomStringConvertible {
    /// A fresh SQLite file in a temporary directory: no server needed (`make test-unit`).
    case sqlite
    /// A fresh database on the test process's PostgreSQL server (`TestPostgres`): integration tests only.
    case postgres

    public var description: String { rawValue }
}

/// A logger that only prints warnings and errors.
let quietLogger: Logger = {
    var logger = Logger(label: "StoreConformance")
    logger.logLevel = .warning
    return logger
}()

/// `body` with a user store on a fresh database of `backend`, and the outbox its changes append to.
func withUserStore(
    _ backend: StoreBackend, keptSentRows: Int = 10_000,
    _ body: (_ store: any UserStore, _ outbox: any Outbox) async throws -> Void
) async throws {
    switch backend {
    case .sqlite:
        let directory = try temporaryDirectory("StoreConformance")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteUserStore(path: "\(directory)/users.sqlite", keptSentRows: keptSentRows, logger: quietLogger)
        try await body(store, store.outbox)
    case .postgres:
        let url = try await TestPostgres.shared().freshDatabase("users")
        try await withPostgresDatabase(url, name: "users", migrations: PostgresUserStore.migrations) { database in
            let store = PostgresUserStore(database: database, keptSentRows: keptSentRows, logger: quietLogger)
            try await body(store, store.outbox)
        }
    }
}

/// `body` with a snapshot store on a fresh database of `backend`.
func withSnapshotStore(_ backend: StoreBackend, _ body: (_ store: any SnapshotStore) async throws -> Void) async throws {
    switch backend {
    case .sqlite:
        let directory = try temporaryDirectory("StoreConformance")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await body(try SQLiteSnapshotStore(path: "\(directory)/orders.sqlite", logger: quietLogger))
    case .postgres:
        let url = try await TestPostgres.shared().freshDatabase("orders")
        try await withPostgresDatabase(url, name: "orders", migrations: PostgresSnapshotStore.migrations) { database in
            try await body(PostgresSnapshotStore(database: database, logger: quietLogger))
        }
    }
}

/// `body` with a snapshot store on a fresh database of `backend` that was first made with the first migration of its
/// schema only, with `sql` run on it then (as the previous version left it), and migrated by opening the store.
func withSnapshotStoreMigratedFromTheFirstSchema(
    _ backend: StoreBackend, insertingBefore sql: String, _ body: (_ store: any SnapshotStore) async throws -> Void
) async throws {
    switch backend {
    case .sqlite:
        let directory = try temporaryDirectory("StoreConformance")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/orders.sqlite"
        do {
            let old = try SQLiteConnection(path: path)
            defer { old.close() }
            try old.migrate(Array(SQLiteSnapshotStore.migrations.prefix(1)))
            try old.execute(sql)
        }
        try await body(try SQLiteSnapshotStore(path: path, logger: quietLogger))
    case .postgres:
        let url = try await TestPostgres.shared().freshDatabase("orders")
        try await withPostgresDatabase(
            url, name: "orders", migrations: Array(PostgresSnapshotStore.migrations.prefix(1))
        ) { database in
            try await database.transaction { connection in
                _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: quietLogger)
            }
        }
        try await withPostgresDatabase(url, name: "orders", migrations: PostgresSnapshotStore.migrations) { database in
            try await body(PostgresSnapshotStore(database: database, logger: quietLogger))
        }
    }
}

/// `body` with a running `PostgresPool` on `url` (its pool runs in a child task, stopped afterwards).
public func withPostgresDatabase<T: Sendable>(
    _ url: String, name: String, migrations: [[String]], maximumConnections: Int = 10,
    _ body: (PostgresPool) async throws -> T
) async throws -> T {
    let database = PostgresPool(
        endpoint: try postgresEndpoint(url), name: name, migrations: migrations,
        maximumConnections: maximumConnections, logger: quietLogger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await database.run() }
        do {
            let result = try await body(database)
            group.cancelAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// The endpoint of a `postgres://user:password@host:port/database` URL (as `TestPostgres` hands out).
public func postgresEndpoint(_ url: String) throws -> PostgresEndpoint {
    guard let components = URLComponents(string: url), let host = components.host, let user = components.user else {
        throw TestFailure("not a postgres URL: \(url)")
    }
    return PostgresEndpoint(
        host: host, port: components.port ?? 5432, username: user, password: components.password,
        database: String(components.path.dropFirst()), tls: .disable)
}
