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

    init(path: String, logger: Logger) throws {
        database = try DatabaseWriter(path: path, migrations: Self.migrations, logger: logger)
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
        await database.close()
    }

    /// Whether the database answers.
    func isHealthy() async -> Bool {
        (try? await database.read { db in try db.queryFirst("SELECT 1 AS one") != nil }) ?? false
    }
}
