import Common
import Foundation
import Logging
import Storage

/// The order service's copy of every user, in `orders.sqlite`.
///
/// An event is applied only when its version is newer than the stored one, so duplicates and out-of-order
/// deliveries never regress a snapshot; a delete leaves a tombstone row (`deleted = 1`) that keeps its version,
/// so a late update cannot bring the user back.
final class SnapshotStore: Sendable {
    static let migrations = [
        """
        CREATE TABLE user_snapshots (
            user_id TEXT PRIMARY KEY,
            name TEXT,
            email TEXT,
            version INTEGER NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            event_id TEXT NOT NULL,
            occurred_at TEXT
        );
        """
    ]

    private let database: DatabaseWriter
    /// The read API's connection, so reads never wait behind a group commit.
    private let reader: DatabaseReader

    init(path: String, logger: Logger) throws {
        database = try DatabaseWriter(path: path, migrations: Self.migrations, logger: logger)
        reader = try DatabaseReader(path: path)
    }

    /// Applies an event; returns false when it changed nothing (a duplicate or an older version).
    /// Concurrent calls share one transaction (group commit); the call returns after the commit.
    func apply(_ event: UserEvent) async throws -> Bool {
        let now = Timestamp.format(Date())
        let occurredAt = event.occurredAt.map(Timestamp.format)
        return try await database.write { db in
            let deleted = event.kind == .deleted
            let changes = try db.run(
                """
                INSERT INTO user_snapshots(user_id, name, email, version, deleted, updated_at, event_id, occurred_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(user_id) DO UPDATE SET
                    name = excluded.name, email = excluded.email, version = excluded.version,
                    deleted = excluded.deleted, updated_at = excluded.updated_at,
                    event_id = excluded.event_id, occurred_at = excluded.occurred_at
                WHERE excluded.version > user_snapshots.version
                """,
                event.userID, deleted ? nil : event.name, deleted ? nil : event.email, event.version,
                deleted ? 1 : 0, now, event.eventID, occurredAt)
            return changes > 0
        }
    }

    func close() async {
        await reader.close()
        await database.close()
    }

    /// Whether the database answers.
    func isHealthy() async -> Bool {
        (try? await reader.read { db in try db.queryFirst("SELECT 1 AS one") != nil }) ?? false
    }

    /// One user's snapshot or tombstone.
    func snapshot(userID: String) async throws -> Snapshot? {
        try await reader.read { db in
            try db.queryFirst("SELECT \(Self.columns) FROM user_snapshots WHERE user_id = ?", userID).map(Snapshot.init)
        }
    }

    /// Live snapshots (not tombstones) ordered by user id, after `after`; `next` is set when there may be more.
    func snapshots(after: String, limit: Int) async throws -> (snapshots: [Snapshot], next: String?) {
        try await reader.read { db in
            let rows = try db.query(
                "SELECT \(Self.columns) FROM user_snapshots WHERE user_id > ? AND deleted = 0 ORDER BY user_id LIMIT ?",
                after, limit + 1)
            let page = rows.prefix(limit).map(Snapshot.init)
            return (Array(page), rows.count > limit ? page.last?.userID : nil)
        }
    }

    private static let columns = "user_id, name, email, version, deleted, updated_at, event_id, occurred_at"
}

/// A user as the order service holds it.
struct Snapshot: Sendable, Equatable {
    var userID: String
    var name: String?
    var email: String?
    var version: Int64
    var deleted: Bool
    var updatedAt: String
    var eventID: String
    var occurredAt: String?

    init(_ row: Row) {
        userID = row.string("user_id") ?? ""
        name = row.string("name")
        email = row.string("email")
        version = row.int64("version") ?? 0
        deleted = row.int("deleted") == 1
        updatedAt = row.string("updated_at") ?? ""
        eventID = row.string("event_id") ?? ""
        occurredAt = row.string("occurred_at")
    }
}
