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
        """
    ]

    /// How many published rows the outbox keeps for inspection before pruning them.
    static let keptSentRows: Int64 = 10_000

    private let database: DatabaseWriter

    init(path: String, logger: Logger) throws {
        database = try DatabaseWriter(path: path, migrations: Self.migrations, logger: logger)
    }

    func close() async {
        await database.close()
    }

    /// Inserts a user and its `user_created` event.
    func createUser(name: String, email: String, traceparent: String) async throws -> User {
        let now = Date()
        let timestamp = Timestamp.format(now)
        let user = User(
            id: UUID().uuidString.lowercased(), name: name, email: email, version: 1,
            createdAt: timestamp, updatedAt: timestamp)
        let event = UserEvent(
            kind: .created, userID: user.id, name: name, email: email,
            eventID: UUID().uuidString.lowercased(), version: 1, occurredAt: now)
        try await database.write { db in
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
        }
        return user
    }

    /// The user with this id, if there is one.
    func user(id: String) async throws -> User? {
        try await database.read { db in
            try db.queryFirst(
                "SELECT id, name, email, version, created_at, updated_at FROM users WHERE id = ?", id
            ).map(Self.user(from:))
        }
    }

    /// The oldest unpublished events, in commit order.
    func pendingOutbox(limit: Int) async throws -> [OutboxEntry] {
        try await database.read { db in
            try db.query(
                """
                SELECT seq, event_id, event_type, user_id, body, traceparent, created_at
                FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?
                """, limit
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
        try await database.write { db in
            try db.run(
                "UPDATE outbox SET sent_at = ? WHERE seq BETWEEN ? AND ? AND sent_at IS NULL", now, first, last)
            try db.run(
                "DELETE FROM outbox WHERE seq < ? AND sent_at IS NOT NULL", first - Self.keptSentRows)
        }
    }

    /// How many events wait to be published.
    func outboxBacklog() async throws -> Int {
        try await database.read { db in
            try db.queryFirst("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")?.int("n") ?? 0
        }
    }

    private static func appendOutbox(_ event: UserEvent, traceparent: String, db: Connection) throws {
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
