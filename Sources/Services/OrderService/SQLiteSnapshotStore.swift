import EventCodec
import Foundation
import Logging
import SQLiteStorage

/// `SnapshotStore` on SQLite, in `orders.sqlite`: one row per user, the tombstone of a deleted user has
/// `deleted = 1` and keeps its version.
///
/// One `DatabaseWriter` applies events, so concurrent deliveries share transactions (group commit); reads run on a
/// `DatabaseReader` of their own, so they never wait behind a commit.
final class SQLiteSnapshotStore: SnapshotStore {
    /// The schema of `orders.sqlite`, oldest first; a file gets the ones it lacks when it is opened.
    static let migrations: [[String]] = [
        ["""
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
        """],
        // Snapshots written before this migration were all compared by version: they stay versioned.
        ["ALTER TABLE user_snapshots ADD COLUMN versioned INTEGER NOT NULL DEFAULT 1;"],
    ]

    private let writer: DatabaseWriter
    private let reader: DatabaseReader

    /// Opens (creating or migrating) the database at `path`.
    init(path: String, logger: Logger) throws {
        writer = try DatabaseWriter(path: path, migrations: Self.migrations, logger: logger)
        reader = try DatabaseReader(path: path)
    }

    /// The rule of ``SnapshotStore``, in the one statement that writes (so competing consumers cannot interleave):
    /// - a versioned event over a versioned snapshot: only when newer (`excluded.version > stored.version`);
    /// - a versioned event over an unversioned snapshot: always, except a create or update over a tombstone;
    /// - an unversioned event: only over an unversioned live snapshot, and not the event applied last (a redelivery);
    ///   it takes the stored version + 1, so that the read API's `ETag` still changes with every change.
    func apply(_ event: UserEvent) async throws -> Bool {
        try await apply([event])[0]
    }

    func apply(_ events: [UserEvent]) async throws -> [Bool] {
        let now = Timestamp.format(Date())
        return try await classifyingFailures {
            // One job of the writer's group transaction: its rows commit together, or roll back together.
            try await writer.write { db in
                try events.map { event in
                    let deleted = event.kind == .deleted
                    let changes = try db.run(
                        Self.upsert, event.userID, deleted ? nil : event.name, deleted ? nil : event.email,
                        event.version, deleted ? 1 : 0, now, event.eventID, event.occurredAt.map(Timestamp.format),
                        event.isVersioned ? 1 : 0)
                    return changes > 0
                }
            }
        }
    }

    /// The one statement that writes an event; see ``apply(_:)``.
    private static let upsert = """
        INSERT INTO user_snapshots(
            user_id, name, email, version, deleted, updated_at, event_id, occurred_at, versioned)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(user_id) DO UPDATE SET
            name = excluded.name, email = excluded.email,
            version = CASE WHEN excluded.versioned = 1 THEN excluded.version
                           ELSE user_snapshots.version + 1 END,
            deleted = excluded.deleted, updated_at = excluded.updated_at,
            event_id = excluded.event_id, occurred_at = excluded.occurred_at,
            versioned = excluded.versioned
        WHERE CASE
            WHEN excluded.versioned = 1 AND user_snapshots.versioned = 1
                THEN excluded.version > user_snapshots.version
            WHEN excluded.versioned = 1
                THEN user_snapshots.deleted = 0 OR excluded.deleted = 1
            ELSE user_snapshots.versioned = 0 AND user_snapshots.deleted = 0
                AND excluded.event_id <> user_snapshots.event_id
        END
        """

    func snapshot(userID: String) async throws -> Snapshot? {
        try await classifyingFailures {
            try await reader.read { db in
                try db.queryFirst("SELECT \(Self.columns) FROM user_snapshots WHERE user_id = ?", userID)
                    .map(Self.snapshot(from:))
            }
        }
    }

    func snapshots(after: String, limit: Int) async throws -> (snapshots: [Snapshot], next: String?) {
        try await classifyingFailures {
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

    /// Runs `body`; a database failure becomes a `SnapshotStoreError`, classified by `SnapshotStoreError(_:)`.
    private func classifyingFailures<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError {
            throw SnapshotStoreError(error)
        }
    }

    private static let columns =
        "user_id, name, email, version, deleted, updated_at, event_id, occurred_at, versioned"

    private static func snapshot(from row: Row) -> Snapshot {
        Snapshot(
            userID: row.string("user_id") ?? "", name: row.string("name"), email: row.string("email"),
            version: row.int64("version") ?? 0, deleted: row.int("deleted") == 1,
            updatedAt: row.string("updated_at") ?? "", eventID: row.string("event_id") ?? "",
            occurredAt: row.string("occurred_at"), isVersioned: row.int("versioned") != 0)
    }
}

extension SnapshotStoreError {
    /// Whose fault a SQLite error is, from its code: the one place that decides for this store.
    ///
    /// The database's own faults (disk full, read-only, I/O error, busy or locked beyond the timeout, cannot open,
    /// corrupt, closed, interrupted) are `.unavailable`: they will pass, and any event would fail the same way. The
    /// rest (a constraint or trigger refusing the row, a value too big, a statement this event makes fail) belong to
    /// the event: `.rejected`.
    init(_ error: DatabaseError) {
        switch error.code {
        case .full, .readOnly, .ioError, .busy, .locked, .cantOpen, .corrupt, .notADatabase, .closed, .interrupted:
            self = .unavailable(reason: "\(error)")
        default:
            self = .rejected(reason: "\(error)")
        }
    }
}
