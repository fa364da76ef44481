import Common
import Foundation
import Logging
import Storage

/// `SnapshotStore` on SQLite, in `orders.sqlite`: one row per user, the tombstone of a deleted user has
/// `deleted = 1` and keeps its version.
///
/// One `DatabaseWriter` applies events, so concurrent deliveries share transactions (group commit); reads run on a
/// `DatabaseReader` of their own, so they never wait behind a commit.
final class SQLiteSnapshotStore: SnapshotStore {
    /// The schema of `orders.sqlite`, oldest first; a file gets the ones it lacks when it is opened.
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

    private let writer: DatabaseWriter
    private let reader: DatabaseReader

    /// Opens (creating or migrating) the database at `path`.
    init(path: String, logger: Logger) throws {
        writer = try DatabaseWriter(path: path, migrations: Self.migrations, logger: logger)
        reader = try DatabaseReader(path: path)
    }

    func apply(_ event: UserEvent) async throws -> Bool {
        let now = Timestamp.format(Date())
        let occurredAt = event.occurredAt.map(Timestamp.format)
        let deleted = event.kind == .deleted
        return try await unavailableOnFailure {
            try await writer.write { db in
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
    }

    func snapshot(userID: String) async throws -> Snapshot? {
        try await unavailableOnFailure {
            try await reader.read { db in
                try db.queryFirst("SELECT \(Self.columns) FROM user_snapshots WHERE user_id = ?", userID)
                    .map(Self.snapshot(from:))
            }
        }
    }

    func snapshots(after: String, limit: Int) async throws -> (snapshots: [Snapshot], next: String?) {
        try await unavailableOnFailure {
            try await reader.read { db in
                let rows = try db.query(
                    """
                    SELECT \(Self.columns) FROM user_snapshots WHERE user_id > ? AND deleted = 0
                    ORDER BY user_id LIMIT ?
                    """, after, limit + 1)
                let page = rows.prefix(limit).map(Self.snapshot(from:))
                return (Array(page), rows.count > limit ? page.last?.userID : nil)
            }
        }
    }

    func isHealthy() async -> Bool {
        (try? await reader.read { db in try db.queryFirst("SELECT 1 AS one") != nil }) ?? false
    }

    /// Runs `body`; a database failure becomes `SnapshotStoreError.unavailable`.
    private func unavailableOnFailure<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError {
            throw SnapshotStoreError.unavailable(reason: "\(error)")
        }
    }

    private static let columns = "user_id, name, email, version, deleted, updated_at, event_id, occurred_at"

    private static func snapshot(from row: Row) -> Snapshot {
        Snapshot(
            userID: row.string("user_id") ?? "", name: row.string("name"), email: row.string("email"),
            version: row.int64("version") ?? 0, deleted: row.int("deleted") == 1,
            updatedAt: row.string("updated_at") ?? "", eventID: row.string("event_id") ?? "",
            occurredAt: row.string("occurred_at"))
    }
}
