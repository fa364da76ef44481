import Common
import Foundation
import Logging
import Storage

/// A user as the API shows it.
struct User: Sendable, Equatable {
    var id: String
    var name: String
    var email: String
    var version: Int64
    var createdAt: String
    var updatedAt: String
}

/// A committed event waiting in the outbox to be published.
struct OutboxEntry: Sendable {
    var seq: Int64
    var eventID: String
    var eventType: String
    var userID: String
    var body: [UInt8]
    var traceparent: String?
    var createdAt: Date
}

/// Why a change was refused.
enum UserStoreError: Error, Equatable {
    case emailTaken
    case notFound
    /// `If-Match` named another version; carries the current one.
    case versionMismatch(current: Int64)
    /// An `Idempotency-Key` reused with a different request.
    case idempotencyKeyReused
}

/// The outcome of a create.
enum CreateOutcome: Sendable {
    case created(User)
    /// A retry with a known `Idempotency-Key`: the original response body, as first sent.
    case replayed(userID: String, body: [UInt8])
}

/// A requested change to a user; nil fields stay as they are.
struct UserPatch: Sendable {
    var name: String?
    var email: String?
}

/// What a version precondition (`If-Match`) accepts.
enum VersionCondition: Sendable, Equatable {
    case any
    case oneOf([Int64])

    func accepts(_ version: Int64) -> Bool {
        switch self {
        case .any: true
        case .oneOf(let versions): versions.contains(version)
        }
    }
}

/// The user service's database: users plus the transactional outbox, in `users.sqlite`.
///
/// Every change writes the user row and its event's outbox row in one transaction, so an event exists
/// exactly when its change was committed. Concurrent requests share transactions (group commit).
final class UserStore: Sendable {
    static let migrations = [
        """
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
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            event_type TEXT NOT NULL,
            user_id TEXT NOT NULL,
            body BLOB NOT NULL,
            traceparent TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT
        );
        CREATE INDEX outbox_pending ON outbox(seq) WHERE sent_at IS NULL;
        """,
        """
        CREATE TABLE idempotency_keys (
            key TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            user_id TEXT NOT NULL,
            response BLOB NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
        """,
    ]

    /// How long an `Idempotency-Key` is remembered.
    static let idempotencyKeyLifetime: TimeInterval = 24 * 60 * 60


    private let database: DatabaseWriter
    /// How many published rows the outbox keeps (for inspection and replay) before pruning older ones.
    private let keptSentRows: Int64
    /// Reads run on their own connection so they never wait behind a group commit.
    private let reader: DatabaseReader

    init(path: String, keptSentRows: Int = 10_000, logger: Logger) throws {
        self.keptSentRows = Int64(keptSentRows)
        database = try DatabaseWriter(path: path, migrations: Self.migrations, logger: logger)
        reader = try DatabaseReader(path: path)
    }

    func close() async {
        await reader.close()
        await database.close()
    }

    /// Inserts a user and its `user_created` event, or replays the original outcome of a retried request.
    ///
    /// `idempotency` is the client's key, the request's fingerprint (two requests are the same when their
    /// fingerprints are), and how to render the response to remember for retries.
    func createUser(
        name: String, email: String, traceparent: String,
        idempotency: (key: String, fingerprint: String, render: @Sendable (User) -> [UInt8])? = nil
    ) async throws -> CreateOutcome {
        let now = Date()
        let timestamp = Timestamp.format(now)
        let user = User(
            id: UUID().uuidString.lowercased(), name: name, email: email, version: 1,
            createdAt: timestamp, updatedAt: timestamp)
        let event = UserEvent(
            kind: .created, userID: user.id, name: name, email: email,
            eventID: UUID().uuidString.lowercased(), version: 1, occurredAt: now)
        return try await database.write { db in
            if let idempotency {
                let cutoff = Timestamp.format(now.addingTimeInterval(-Self.idempotencyKeyLifetime))
                try db.run("DELETE FROM idempotency_keys WHERE created_at < ?", cutoff)
                if let known = try db.queryFirst(
                    "SELECT fingerprint, user_id, response FROM idempotency_keys WHERE key = ?", idempotency.key)
                {
                    guard known.string("fingerprint") == idempotency.fingerprint else {
                        throw UserStoreError.idempotencyKeyReused
                    }
                    return .replayed(userID: known.string("user_id") ?? "", body: known.blob("response") ?? [])
                }
            }
            do {
                try db.run(
                    """
                    INSERT INTO users(id, name, email, email_key, version, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                    user.id, user.name, user.email, Self.emailKey(email), user.version, user.createdAt, user.updatedAt)
            } catch let error as DatabaseError where error.isUniqueConstraintViolation {
                throw UserStoreError.emailTaken
            }
            try Self.appendOutbox(event, traceparent: traceparent, db: db)
            if let idempotency {
                try db.run(
                    "INSERT INTO idempotency_keys(key, fingerprint, user_id, response, created_at) VALUES (?, ?, ?, ?, ?)",
                    idempotency.key, idempotency.fingerprint, user.id, idempotency.render(user), timestamp)
            }
            return .created(user)
        }
    }

    /// Applies a patch, bumping the version and writing `user_updated` with the full new state.
    /// A patch that changes nothing returns the user as it is, with no new version and no event.
    func updateUser(id: String, patch: UserPatch, condition: VersionCondition, traceparent: String) async throws -> User {
        let now = Date()
        return try await database.write { db in
            var user = try Self.current(id: id, condition: condition, db: db)
            let name = patch.name ?? user.name
            let email = patch.email ?? user.email
            guard name != user.name || email != user.email else { return user }
            user.name = name
            user.email = email
            user.version += 1
            user.updatedAt = Timestamp.format(now)
            do {
                try db.run(
                    "UPDATE users SET name = ?, email = ?, email_key = ?, version = ?, updated_at = ? WHERE id = ?",
                    name, email, Self.emailKey(email), user.version, user.updatedAt, id)
            } catch let error as DatabaseError where error.isUniqueConstraintViolation {
                throw UserStoreError.emailTaken
            }
            let event = UserEvent(
                kind: .updated, userID: id, name: name, email: email,
                eventID: UUID().uuidString.lowercased(), version: user.version, occurredAt: now)
            try Self.appendOutbox(event, traceparent: traceparent, db: db)
            return user
        }
    }

    /// Deletes a user and writes `user_deleted` carrying the next version.
    func deleteUser(id: String, condition: VersionCondition, traceparent: String) async throws {
        let now = Date()
        try await database.write { db in
            let user = try Self.current(id: id, condition: condition, db: db)
            try db.run("DELETE FROM users WHERE id = ?", id)
            let event = UserEvent(
                kind: .deleted, userID: id, eventID: UUID().uuidString.lowercased(), version: user.version + 1,
                occurredAt: now)
            try Self.appendOutbox(event, traceparent: traceparent, db: db)
        }
    }

    /// Users in creation order, starting after the one with sequence number `after`.
    /// Returns up to `limit` users and the sequence number to continue from, if there may be more.
    func users(after: Int64, limit: Int) async throws -> (users: [User], next: Int64?) {
        try await reader.read { db in
            let rows = try db.query(
                """
                SELECT seq, id, name, email, version, created_at, updated_at FROM users
                WHERE seq > ? ORDER BY seq LIMIT ?
                """, after, limit + 1)
            let page = rows.prefix(limit)
            let next = rows.count > limit ? page.last?.int64("seq") : nil
            return (page.map(Self.user(from:)), next)
        }
    }

    private static func current(id: String, condition: VersionCondition, db: SQLiteConnection) throws -> User {
        guard
            let user = try db.queryFirst(
                "SELECT id, name, email, version, created_at, updated_at FROM users WHERE id = ?", id
            ).map(Self.user(from:))
        else {
            throw UserStoreError.notFound
        }
        guard condition.accepts(user.version) else { throw UserStoreError.versionMismatch(current: user.version) }
        return user
    }

    /// The user with this id, if there is one.
    func user(id: String) async throws -> User? {
        try await reader.read { db in
            try db.queryFirst(
                "SELECT id, name, email, version, created_at, updated_at FROM users WHERE id = ?", id
            ).map(Self.user(from:))
        }
    }

    /// The oldest unpublished events after sequence number `after`, in commit order.
    func pendingOutbox(after: Int64 = 0, limit: Int) async throws -> [OutboxEntry] {
        try await reader.read { db in
            try db.query(
                """
                SELECT seq, event_id, event_type, user_id, body, traceparent, created_at
                FROM outbox WHERE sent_at IS NULL AND seq > ? ORDER BY seq LIMIT ?
                """, after, limit
            ).map { row in
                OutboxEntry(
                    seq: row.int64("seq") ?? 0, eventID: row.string("event_id") ?? "",
                    eventType: row.string("event_type") ?? "", userID: row.string("user_id") ?? "",
                    body: row.blob("body") ?? [], traceparent: row.string("traceparent"),
                    createdAt: row.string("created_at").flatMap(Timestamp.parse) ?? Date())
            }
        }
    }

    /// Marks outbox rows `first...last` sent (the broker confirmed them) and prunes old sent rows.
    func markSent(from first: Int64, through last: Int64) async throws {
        let now = Timestamp.format(Date())
        let keptSentRows = self.keptSentRows
        try await database.write { db in
            try db.run(
                "UPDATE outbox SET sent_at = ? WHERE seq BETWEEN ? AND ? AND sent_at IS NULL", now, first, last)
            try db.run(
                "DELETE FROM outbox WHERE seq < ? AND sent_at IS NOT NULL", first - keptSentRows)
        }
    }

    /// How many events the outbox holds, sent or not.
    func outboxCount() async throws -> Int {
        try await reader.read { db in try db.queryFirst("SELECT count(*) AS n FROM outbox")?.int("n") ?? 0 }
    }

    /// How many events wait to be published.
    func outboxBacklog() async throws -> Int {
        try await reader.read { db in
            try db.queryFirst("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")?.int("n") ?? 0
        }
    }

    private static func appendOutbox(_ event: UserEvent, traceparent: String, db: SQLiteConnection) throws {
        try db.run(
            """
            INSERT INTO outbox(event_id, event_type, user_id, body, traceparent, created_at)
            VALUES (?, ?, ?, ?, ?, ?)
            """,
            event.eventID, event.kind.rawValue, event.userID, event.encodedBody(), traceparent,
            Timestamp.format(event.occurredAt ?? Date()))
    }

    private static func user(from row: Row) -> User {
        User(
            id: row.string("id") ?? "", name: row.string("name") ?? "", email: row.string("email") ?? "",
            version: row.int64("version") ?? 0, createdAt: row.string("created_at") ?? "",
            updatedAt: row.string("updated_at") ?? "")
    }

    /// Emails are unique regardless of case.
    static func emailKey(_ email: String) -> String {
        email.lowercased()
    }
}
