import Foundation
public import Logging
public import PostgresNIO
public import ServiceLifecycle
import Synchronization

/// One PostgreSQL database as a service uses it: a connection pool (postgres-nio's `PostgresClient`), the schema
/// brought up to date when the service starts, transactions, and dedicated connections for session state (advisory
/// locks, `LISTEN`).
///
/// It is a `Service`: `run()` applies the migrations the database lacks, then runs the pool until graceful shutdown.
/// Calls made before the migrations are done wait for them; if they fail, `run()` throws (the process stops with the
/// reason) and every waiting or later call throws the same error.
public final class PostgresPool: Service, Sendable {
    /// Where the database is; its `description` is safe to log.
    public let endpoint: PostgresEndpoint
    private let client: PostgresClient
    private let migrations: [[String]]
    private let migrationLock: Int64
    private let logger: Logger
    private let schema = SchemaGate()

    /// A pool of at most `maximumConnections` to `endpoint`, whose schema is `migrations` (oldest first, each a list
    /// of statements run in one transaction). `name` identifies the schema: instances starting together apply each
    /// migration once, serialised by an advisory lock derived from it.
    public init(
        endpoint: PostgresEndpoint, name: String, migrations: [[String]], maximumConnections: Int = 20,
        logger: Logger
    ) {
        self.endpoint = endpoint
        self.migrations = migrations
        self.logger = logger
        migrationLock = Self.lockKey("migrations:\(name)")
        var configuration = PostgresClient.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password,
            database: endpoint.database, tls: Self.clientTLS(endpoint.tls))
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            // The pool runs from the start, so the migrations' failure (not a hung lease) is what callers see.
            group.addTask { await self.client.run() }
            do {
                try await migrate()
                schema.open(.success(()))
            } catch {
                let failure = PostgresDatabaseError(error)
                schema.open(.failure(failure))
                group.cancelAll()
                throw failure
            }
            try await group.waitForAll()
        }
    }

    /// Runs `body` in a transaction on a pooled connection: committed when it returns, rolled back when it throws.
    /// A transaction the server aborted as a deadlock or serialisation failure is run again (up to 3 times). Errors
    /// from the database are `PostgresDatabaseError`s; others thrown by `body` pass through.
    public func transaction<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await schema.wait()
        var attempt = 1
        while true {
            do {
                return try await client.withConnection { connection in
                    try await Self.inTransaction(connection, logger: logger, body)
                }
            } catch let error as PostgresDatabaseError where error.isRetryable && attempt < 3 {
                attempt += 1
            }
        }
    }

    /// Runs `body` on a pooled connection, outside any explicit transaction.
    public func read<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await schema.wait()
        do {
            return try await client.withConnection { connection in try await body(connection) }
        } catch let error as PSQLError {
            throw PostgresDatabaseError(error)
        }
    }

    /// Whether the database answers `SELECT 1` within `timeout`.
    public func isHealthy(timeout: Duration = .seconds(2)) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                (try? await self.read { connection in
                    try await connection.query("SELECT 1", logger: self.logger).collect().count == 1
                }) ?? false
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Opens a connection of its own, outside the pool, for session state the pool must not share: an advisory
    /// lock, `LISTEN`. The caller closes it.
    public func dedicatedConnection() async throws -> PostgresConnection {
        try await schema.wait()
        return try await openConnection()
    }

    /// A stable 64-bit key for `pg_advisory_lock` from a name (FNV-1a, so every instance and version agrees).
    public static func lockKey(_ name: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    // MARK: Migrations

    /// Applies the migrations the database lacks, each in its own transaction with its row in `schema_migrations`,
    /// while holding an advisory lock so that instances starting together do not race.
    private func migrate() async throws {
        let connection = try await openConnection()
        do {
            try await migrate(on: connection)
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    private func migrate(on connection: PostgresConnection) async throws {
        let lock = migrationLock
        try await connection.query("SELECT pg_advisory_lock(\(lock))", logger: logger)
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """, logger: logger)
        var applied = 0
        for try await version in try await connection.query(
            "SELECT coalesce(max(version), 0) FROM schema_migrations", logger: logger
        ).decode(Int.self) {
            applied = version
        }
        guard applied <= migrations.count else {
            throw PostgresDatabaseError(
                sqlState: nil,
                message: "the database has schema version \(applied), newer than this program's \(migrations.count)")
        }
        for (index, statements) in migrations.enumerated().dropFirst(applied) {
            let version = index + 1
            try await Self.inTransaction(connection, logger: logger) { connection in
                for statement in statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO schema_migrations(version) VALUES (\(version))", logger: logger)
            }
            logger.info("database migrated", metadata: ["version": "\(version)", "database": "\(endpoint)"])
        }
        try await connection.query("SELECT pg_advisory_unlock(\(lock))", logger: logger)
    }

    /// A new connection to the database, outside the pool.
    private func openConnection() async throws -> PostgresConnection {
        var configuration = PostgresConnection.Configuration(
            host: endpoint.host, port: endpoint.port, username: endpoint.username, password: endpoint.password,
            database: endpoint.database, tls: try Self.connectionTLS(endpoint.tls))
        configuration.options.connectTimeout = .seconds(5)
        do {
            return try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        } catch {
            throw PostgresDatabaseError(error)
        }
    }

    // MARK: Helpers

    /// `BEGIN`, `body`, `COMMIT`; `ROLLBACK` when `body` throws. Database errors become `PostgresDatabaseError`.
    private static func inTransaction<T>(
        _ connection: PostgresConnection, logger: Logger, _ body: @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        do {
            try await connection.query("BEGIN", logger: logger)
        } catch {
            throw PostgresDatabaseError(error)
        }
        let value: T
        do {
            value = try await body(connection)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            if error is PSQLError { throw PostgresDatabaseError(error) }
            throw error
        }
        do {
            try await connection.query("COMMIT", logger: logger)
        } catch {
            throw PostgresDatabaseError(error)
        }
        return value
    }

    private static func clientTLS(_ mode: PostgresEndpoint.TLSMode) -> PostgresClient.Configuration.TLS {
        switch mode {
        case .disable: .disable
        case .prefer: .prefer(.makeClientConfiguration())
        case .require: .require(.makeClientConfiguration())
        }
    }

    private static func connectionTLS(_ mode: PostgresEndpoint.TLSMode) throws -> PostgresConnection.Configuration.TLS {
        switch mode {
        case .disable: .disable
        case .prefer: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        case .require: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
    }
}

/// Holds calls back until the schema is up to date, then lets them through (or fails them with why it is not).
private final class SchemaGate: Sendable {
    private let state = Mutex<(result: Result<Void, PostgresDatabaseError>?, waiters: [CheckedContinuation<Void, any Error>])>(
        (nil, []))

    func open(_ result: Result<Void, PostgresDatabaseError>) {
        let waiters = state.withLock { state in
            state.result = result
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(with: result.mapError { $0 as any Error }) }
    }

    func wait() async throws {
        if let result = state.withLock({ $0.result }) { return try result.get() }
        try await withCheckedThrowingContinuation { continuation in
            let result = state.withLock { state in
                if state.result == nil { state.waiters.append(continuation) }
                return state.result
            }
            if let result { continuation.resume(with: result.mapError { $0 as any Error }) }
        }
    }
}
