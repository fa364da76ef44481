import EventCodec
import Foundation
import Logging
import PostgresNIO
import PostgresStorage

/// `UserStore` on PostgreSQL: users, idempotency keys and the outbox in one database, which several user-service
/// instances may share.
///
/// The guarantees hold across instances because the database enforces them: a unique index on the lower-cased email
/// (409 for the second of two racing creates), a row lock (`SELECT ... FOR UPDATE`) under which a change reads the
/// version it checks `If-Match` against and writes the next one (so concurrent changes of one user get consecutive
/// versions and their events are appended in version order), and a transaction-scoped advisory lock per
/// `Idempotency-Key` (so a retry racing its original waits for it and replays it). A call returns after its
/// transaction committed.
final class PostgresUserStore: UserStore {
    /// The schema of the users database, oldest first.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE users (
                seq BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                email TEXT NOT NULL,
                email_key TEXT NOT NULL UNIQUE,
                version BIGINT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE idempotency_keys (
                key TEXT PRIMARY KEY,
                fingerprint TEXT NOT NULL,
                user_id TEXT NOT NULL,
                name TEXT NOT NULL,
                email TEXT NOT NULL,
                version BIGINT NOT NULL,
                created_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at)",
        ] + PostgresOutbox.schema,
        // 2: outbox rows AMQP cannot carry are set aside with the reason, kept but no longer pending.
        [PostgresOutbox.setAsideColumn],
    ]

    /// The events of every change, appended in the change's transaction.
    let outbox: PostgresOutbox
    private let database: PostgresPool
    private let logger: Logger

    /// A store on `database` (whose migrations must be `migrations`); the outbox keeps `keptSentRows` published rows.
    init(database: PostgresPool, keptSentRows: Int = 10_000, logger: Logger) {
        self.database = database
        self.logger = logger
        outbox = PostgresOutbox(database: database, keptSentRows: keptSentRows, logger: logger)
    }

    func create(
        name: String, email: String, traceparent: String, idempotency: IdempotencyKey?
    ) async throws -> CreateOutcome {
        let now = Date()
        let (user, event) = UserStoreRules.created(name: name, email: email, at: now)
        let cutoff = Timestamp.format(now.addingTimeInterval(-UserStoreRules.idempotencyKeyLifetime))
        return try await write { connection in
            if let idempotency {
                // Requests with one key, on any instance, take turns: a retry sees what its original committed.
                try await connection.query(
                    "SELECT pg_advisory_xact_lock(\(Self.idempotencyLockSpace), hashtext(\(idempotency.key)))",
                    logger: self.logger)
                try await connection.query("DELETE FROM idempotency_keys WHERE created_at < \(cutoff)", logger: self.logger)
                if let original = try await self.userCreated(with: idempotency, on: connection) {
                    return .replayed(original)
                }
            }
            try await self.insert(user, on: connection)
            try await self.outbox.append(event, traceparent: traceparent, on: connection)
            if let idempotency {
                try await connection.query(
                    """
                    INSERT INTO idempotency_keys(key, fingerprint, user_id, name, email, version, created_at)
                    VALUES (\(idempotency.key), \(idempotency.fingerprint), \(user.id), \(user.name), \(user.email),
                        \(user.version), \(user.createdAt))
                    """, logger: self.logger)
            }
            return .created(user)
        }
    }

    func update(id: String, patch: UserPatch, condition: VersionCondition, traceparent: String) async throws -> User {
        let now = Date()
        return try await write { connection in
            let current = try await self.lockedUser(id: id, condition: condition, on: connection)
            guard case let (user, event)? = UserStoreRules.updated(current, by: patch, at: now) else { return current }
            let emailKey = UserStoreRules.emailKey(user.email)
            do {
                try await connection.query(
                    """
                    UPDATE users SET name = \(user.name), email = \(user.email), email_key = \(emailKey),
                        version = \(user.version), updated_at = \(user.updatedAt)
                    WHERE id = \(id)
                    """, logger: self.logger)
            } catch let error as PSQLError where PostgresDatabaseError(error).isUniqueViolation {
                throw UserStoreError.emailTaken
            }
            try await self.outbox.append(event, traceparent: traceparent, on: connection)
            return user
        }
    }

    func delete(id: String, condition: VersionCondition, traceparent: String) async throws {
        let now = Date()
        try await write { connection in
            let user = try await self.lockedUser(id: id, condition: condition, on: connection)
            try await connection.query("DELETE FROM users WHERE id = \(id)", logger: self.logger)
            try await self.outbox.append(UserStoreRules.deleted(user, at: now), traceparent: traceparent, on: connection)
        }
    }

    func user(id: String) async throws -> User? {
        try await read { connection in
            try await self.users(
                connection.query("SELECT \(unescaped: Self.userColumns) FROM users WHERE id = \(id)", logger: self.logger)
            ).first
        }
    }

    func users(after position: Int64, limit: Int) async throws -> (users: [User], next: Int64?) {
        try await read { connection in
            var rows: [(seq: Int64, user: User)] = []
            let query: PostgresQuery = """
                SELECT seq, \(unescaped: Self.userColumns) FROM users WHERE seq > \(position) ORDER BY seq
                LIMIT \(limit + 1)
                """
            for try await (seq, id, name, email, version, createdAt, updatedAt) in try await connection.query(
                query, logger: self.logger
            ).decode((Int64, String, String, String, Int64, String, String).self) {
                rows.append(
                    (seq, User(
                        id: id, name: name, email: email, version: version, createdAt: createdAt,
                        updatedAt: updatedAt)))
            }
            let page = rows.prefix(limit)
            return (page.map(\.user), rows.count > limit ? page.last?.seq : nil)
        }
    }

    // MARK: Helpers

    /// The first key of the two-key advisory locks taken per `Idempotency-Key` (the second is the key's hash).
    private static let idempotencyLockSpace: Int32 = 0x1de4
    private static let userColumns = "id, name, email, version, created_at, updated_at"

    /// Runs `body` in a transaction; a database failure becomes `UserStoreError.unavailable`.
    private func write<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await database.transaction(body)
        } catch let error as PostgresDatabaseError {
            throw UserStoreError.unavailable(reason: "\(error)")
        } catch let error as PSQLError {
            throw UserStoreError.unavailable(reason: "\(PostgresDatabaseError(error))")
        }
    }

    /// Runs `body` on a pooled connection; a database failure becomes `UserStoreError.unavailable`.
    private func read<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await database.read(body)
        } catch let error as PostgresDatabaseError {
            throw UserStoreError.unavailable(reason: "\(error)")
        } catch let error as PSQLError {
            throw UserStoreError.unavailable(reason: "\(PostgresDatabaseError(error))")
        }
    }

    private func insert(_ user: User, on connection: PostgresConnection) async throws {
        let emailKey = UserStoreRules.emailKey(user.email)
        do {
            try await connection.query(
                """
                INSERT INTO users(id, name, email, email_key, version, created_at, updated_at)
                VALUES (\(user.id), \(user.name), \(user.email), \(emailKey), \(user.version), \(user.createdAt),
                    \(user.updatedAt))
                """, logger: logger)
        } catch let error as PSQLError where PostgresDatabaseError(error).isUniqueViolation {
            throw UserStoreError.emailTaken
        }
    }

    /// The user a known key created, as it was created; nil for a new key.
    private func userCreated(with idempotency: IdempotencyKey, on connection: PostgresConnection) async throws -> User? {
        let rows = try await connection.query(
            """
            SELECT fingerprint, user_id, name, email, version, created_at FROM idempotency_keys
            WHERE key = \(idempotency.key)
            """, logger: logger)
        for try await (fingerprint, userID, name, email, version, createdAt) in rows.decode(
            (String, String, String, String, Int64, String).self)
        {
            guard idempotency.matches(storedFingerprint: fingerprint) else { throw UserStoreError.idempotencyKeyReused }
            return User(
                id: userID, name: name, email: email, version: version, createdAt: createdAt, updatedAt: createdAt)
        }
        return nil
    }

    /// The user, locked until the transaction ends, if it exists and its version meets `condition`.
    private func lockedUser(id: String, condition: VersionCondition, on connection: PostgresConnection) async throws
        -> User
    {
        let rows = try await connection.query(
            "SELECT \(unescaped: Self.userColumns) FROM users WHERE id = \(id) FOR UPDATE", logger: logger)
        guard let user = try await users(rows).first else { throw UserStoreError.notFound }
        guard condition.accepts(user.version) else { throw UserStoreError.versionMismatch(current: user.version) }
        return user
    }

    private func users(_ rows: PostgresRowSequence) async throws -> [User] {
        var users: [User] = []
        for try await (id, name, email, version, createdAt, updatedAt) in rows.decode(
            (String, String, String, Int64, String, String).self)
        {
            users.append(
                User(id: id, name: name, email: email, version: version, createdAt: createdAt, updatedAt: updatedAt))
        }
        return users
    }
}
