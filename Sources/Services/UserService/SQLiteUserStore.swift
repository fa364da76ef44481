import EventCodec
import Foundation
import Logging
import SQLiteStorage

/// `UserStore` on SQLite: users, idempotency keys and the outbox in one file, `users.sqlite`.
///
/// One `DatabaseWriter` writes the file, so concurrent requests share transactions (group commit, one fsync for
/// many): a call returns only after its transaction committed. Reads run on a `DatabaseReader` of their own, so they
/// never wait behind a commit.
final class SQLiteUserStore: UserStore {
    /// The schema of `users.sqlite`, oldest first; a file gets the ones it lacks when it is opened.
    static let migrations: [[String]] = [
        // 1: users, and the outbox their events go to.
        ["""
        CREATE TABLE users (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            email_key TEXT NOT NULL UNIQUE,
            version INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        """, SQLiteOutbox.table],
        // 2: idempotency keys, with the response body first sent.
        ["""
        CREATE TABLE idempotency_keys (
            key TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            user_id TEXT NOT NULL,
            response BLOB NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
        """],
        // 3: idempotency keys keep the user they created as data, not as an HTTP body. The bodies stored by
        // migration 2 are the created user's JSON; a row whose body is not one (none was ever written) is dropped.
        ["""
        CREATE TABLE idempotency_keys_new (
            key TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            version INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        INSERT INTO idempotency_keys_new(key, fingerprint, user_id, name, email, version, created_at)
        SELECT key, fingerprint, user_id, json_extract(body, '$.name'), json_extract(body, '$.email'),
            coalesce(json_extract(body, '$.version'), 1), created_at
        FROM (SELECT *, CAST(response AS TEXT) AS body FROM idempotency_keys)
        WHERE CASE WHEN json_valid(body)
            THEN json_type(body, '$.name') = 'text' AND json_type(body, '$.email') = 'text' ELSE 0 END;
        DROP TABLE idempotency_keys;
        ALTER TABLE idempotency_keys_new RENAME TO idempotency_keys;
        CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
        """],
        // 4: outbox rows AMQP cannot carry are set aside with the reason, kept but no longer pending.
        [SQLiteOutbox.setAsideColumn],
    ]

    /// The events of every change, appended in the change's transaction.
    let outbox: SQLiteOutbox
    private let writer: DatabaseWriter
    private let reader: DatabaseReader

    /// Opens (creating or migrating) the database at `path`; the outbox keeps `keptSentRows` published rows.
    init(path: String, keptSentRows: Int = 10_000, logger: Logger) throws {
        writer = try DatabaseWriter(path: path, migrations: Self.migrations, logger: logger)
        reader = try DatabaseReader(path: path)
        outbox = SQLiteOutbox(writer: writer, reader: reader, keptSentRows: keptSentRows)
    }

    func create(
        name: String, email: String, traceparent: String, idempotency: IdempotencyKey?
    ) async throws -> CreateOutcome {
        let now = Date()
        let (user, event) = UserStoreRules.created(name: name, email: email, at: now)
        let cutoff = Timestamp.format(now.addingTimeInterval(-UserStoreRules.idempotencyKeyLifetime))
        let outbox = self.outbox
        return try await write { db in
            if let idempotency {
                try db.run("DELETE FROM idempotency_keys WHERE created_at < ?", cutoff)
                if let original = try Self.userCreated(with: idempotency, db: db) {
                    return .replayed(original)
                }
            }
            try Self.insert(user, db: db)
            try outbox.append(event, traceparent: traceparent, in: db)
            if let idempotency {
                try db.run(
                    """
                    INSERT INTO idempotency_keys(key, fingerprint, user_id, name, email, version, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                    idempotency.key, idempotency.fingerprint, user.id, user.name, user.email, user.version,
                    user.createdAt)
            }
            return .created(user)
        }
    }

    func update(id: String, patch: UserPatch, condition: VersionCondition, traceparent: String) async throws -> User {
        let now = Date()
        let outbox = self.outbox
        return try await write { db in
            let current = try Self.current(id: id, condition: condition, db: db)
            guard case let (user, event)? = UserStoreRules.updated(current, by: patch, at: now) else { return current }
            do {
                try db.run(
                    "UPDATE users SET name = ?, email = ?, email_key = ?, version = ?, updated_at = ? WHERE id = ?",
                    user.name, user.email, UserStoreRules.emailKey(user.email), user.version, user.updatedAt, id)
            } catch let error as DatabaseError where error.isUniqueConstraintViolation {
                throw UserStoreError.emailTaken
            }
            try outbox.append(event, traceparent: traceparent, in: db)
            return user
        }
    }

    func delete(id: String, condition: VersionCondition, traceparent: String) async throws {
        let now = Date()
        let outbox = self.outbox
        try await write { db in
            let user = try Self.current(id: id, condition: condition, db: db)
            try db.run("DELETE FROM users WHERE id = ?", id)
            try outbox.append(UserStoreRules.deleted(user, at: now), traceparent: traceparent, in: db)
        }
    }

    func user(id: String) async throws -> User? {
        try await read { db in
            try db.queryFirst("SELECT \(Self.userColumns) FROM users WHERE id = ?", id).map(Self.user(from:))
        }
    }

    func users(after position: Int64, limit: Int) async throws -> (users: [User], next: Int64?) {
        try await read { db in
            let rows = try db.query(
                "SELECT seq, \(Self.userColumns) FROM users WHERE seq > ? ORDER BY seq LIMIT ?", position, limit + 1)
            let page = rows.prefix(limit)
            let next = rows.count > limit ? page.last?.int64("seq") : nil
            return (page.map(Self.user(from:)), next)
        }
    }

    // MARK: Helpers

    /// Runs `body` in the next group transaction; a database failure becomes `UserStoreError.unavailable`.
    private func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        do {
            return try await writer.write(body)
        } catch let error as DatabaseError {
            throw UserStoreError.unavailable(reason: "\(error)")
        }
    }

    /// Runs `body` on the reader; a database failure becomes `UserStoreError.unavailable`.
    private func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        do {
            return try await reader.read(body)
        } catch let error as DatabaseError {
            throw UserStoreError.unavailable(reason: "\(error)")
        }
    }

    private static func insert(_ user: User, db: SQLiteConnection) throws {
        do {
            try db.run(
                """
                INSERT INTO users(id, name, email, email_key, version, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                user.id, user.name, user.email, UserStoreRules.emailKey(user.email), user.version, user.createdAt,
                user.updatedAt)
        } catch let error as DatabaseError where error.isUniqueConstraintViolation {
            throw UserStoreError.emailTaken
        }
    }

    /// The user a known key created, as it was created (its `updated_at` is its `created_at`); nil for a new key.
    private static func userCreated(with idempotency: IdempotencyKey, db: SQLiteConnection) throws -> User? {
        guard
            let row = try db.queryFirst(
                "SELECT fingerprint, user_id, name, email, version, created_at FROM idempotency_keys WHERE key = ?",
                idempotency.key)
        else { return nil }
        guard idempotency.matches(storedFingerprint: row.string("fingerprint") ?? "") else { throw UserStoreError.idempotencyKeyReused }
        let createdAt = row.string("created_at") ?? ""
        return User(
            id: row.string("user_id") ?? "", name: row.string("name") ?? "", email: row.string("email") ?? "",
            version: row.int64("version") ?? 1, createdAt: createdAt, updatedAt: createdAt)
    }

    /// The user, if it exists and its version meets `condition`.
    private static func current(id: String, condition: VersionCondition, db: SQLiteConnection) throws -> User {
        guard let user = try db.queryFirst("SELECT \(userColumns) FROM users WHERE id = ?", id).map(user(from:)) else {
            throw UserStoreError.notFound
        }
        guard condition.accepts(user.version) else { throw UserStoreError.versionMismatch(current: user.version) }
        return user
    }

    private static let userColumns = "id, name, email, version, created_at, updated_at"

    private static func user(from row: Row) -> User {
        User(
            id: row.string("id") ?? "", name: row.string("name") ?? "", email: row.string("email") ?? "",
            version: row.int64("version") ?? 0, createdAt: row.string("created_at") ?? "",
            updatedAt: row.string("updated_at") ?? "")
    }
}
