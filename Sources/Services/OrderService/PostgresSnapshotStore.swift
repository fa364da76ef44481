import EventCodec
import Foundation
import Logging
import PostgresNIO
import PostgresStorage

/// `SnapshotStore` on PostgreSQL, which several order-service instances may share: one row per user, the tombstone
/// of a deleted user has `deleted = true` and keeps its version. User ids compare bytewise (`COLLATE "C"`), as in
/// SQLite, so pages follow the same order.
///
/// An event is applied by one conditional upsert (`... ON CONFLICT DO UPDATE ... WHERE <the rule>`), the rule of
/// ``SnapshotStore`` for versioned and unversioned events, as in `SQLiteSnapshotStore`: PostgreSQL locks the
/// conflicting row and re-checks the condition against its committed state, so competing instances applying events of
/// one user in any order end with the newest.
///
/// A data exception (SQLSTATE class 22, e.g. a NUL in a name: PostgreSQL text cannot hold it), an integrity
/// violation (class 23) or a value over a server limit (54000) caused by an event's content is
/// `SnapshotStoreError.rejected` (the event's fault: it is
/// dead-lettered with the reason, never held as a database outage); every other failure is `.unavailable`.
final class PostgresSnapshotStore: SnapshotStore {
    /// The schema of the orders database, oldest first.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE user_snapshots (
                user_id TEXT COLLATE "C" PRIMARY KEY,
                name TEXT,
                email TEXT,
                version BIGINT NOT NULL,
                deleted BOOLEAN NOT NULL DEFAULT false,
                updated_at TEXT NOT NULL,
                event_id TEXT NOT NULL,
                occurred_at TEXT
            )
            """
        ],
        // Snapshots written before this migration were all compared by version: they stay versioned.
        ["ALTER TABLE user_snapshots ADD COLUMN versioned BOOLEAN NOT NULL DEFAULT true"],
    ]

    private let database: PostgresPool
    private let logger: Logger

    /// A store on `database` (whose migrations must be `migrations`).
    init(database: PostgresPool, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    func apply(_ event: UserEvent) async throws -> Bool {
        try await classifyingFailures {
            try await database.read { connection in
                try await Self.apply(event, now: Timestamp.format(Date()), on: connection, logger: logger)
            }
        }
    }

    /// In one transaction, rows locked in user-id order (then arrival order), so that instances applying
    /// overlapping batches do not deadlock each other.
    func apply(_ events: [UserEvent]) async throws -> [Bool] {
        let now = Timestamp.format(Date())
        let order = events.indices.sorted { (events[$0].userID, $0) < (events[$1].userID, $1) }
        return try await classifyingFailures {
            try await database.transaction { [logger] connection in
                var applied = Array(repeating: false, count: events.count)
                for index in order {
                    applied[index] = try await Self.apply(events[index], now: now, on: connection, logger: logger)
                }
                return applied
            }
        }
    }

    /// The one statement that writes an event, with the rule of ``SnapshotStore`` in its `WHERE`:
    /// - a versioned event over a versioned snapshot: only when newer (`excluded.version > stored.version`);
    /// - a versioned event over an unversioned snapshot: always, except a create or update over a tombstone;
    /// - an unversioned event: only over an unversioned live snapshot, and not the event applied last (a redelivery);
    ///   it takes the stored version + 1, so that the read API's `ETag` still changes with every change.
    private static func apply(
        _ event: UserEvent, now: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> Bool {
        let occurredAt = event.occurredAt.map(Timestamp.format)
        let deleted = event.kind == .deleted
        let name = deleted ? nil : event.name
        let email = deleted ? nil : event.email
        let rows = try await connection.query(
            """
            INSERT INTO user_snapshots(
                user_id, name, email, version, deleted, updated_at, event_id, occurred_at, versioned)
            VALUES (\(event.userID), \(name), \(email), \(event.version), \(deleted), \(now), \(event.eventID),
                \(occurredAt), \(event.isVersioned))
            ON CONFLICT (user_id) DO UPDATE SET
                name = excluded.name, email = excluded.email,
                version = CASE WHEN excluded.versioned THEN excluded.version ELSE user_snapshots.version + 1 END,
                deleted = excluded.deleted, updated_at = excluded.updated_at,
                event_id = excluded.event_id, occurred_at = excluded.occurred_at,
                versioned = excluded.versioned
            WHERE CASE
                WHEN excluded.versioned AND user_snapshots.versioned
                    THEN excluded.version > user_snapshots.version
                WHEN excluded.versioned
                    THEN NOT user_snapshots.deleted OR excluded.deleted
                ELSE NOT user_snapshots.versioned AND NOT user_snapshots.deleted
                    AND excluded.event_id <> user_snapshots.event_id
            END
            RETURNING 1
            """, logger: logger)
        return try await rows.collect().count > 0
    }

    /// No stored id holds a NUL (PostgreSQL text cannot, and such events are rejected): an id with one, as a client
    /// can put in a path, is nobody's, answered without asking the server (which would fail with 22021).
    func snapshot(userID: String) async throws -> Snapshot? {
        guard !userID.unicodeScalars.contains("\u{0}") else { return nil }
        return try await classifyingFailures {
            try await database.read { connection in
                try await Self.snapshots(
                    connection.query(
                        "SELECT \(unescaped: Self.columns) FROM user_snapshots WHERE user_id = \(userID)",
                        logger: logger)
                ).first
            }
        }
    }

    /// A cursor with a NUL (which PostgreSQL text cannot hold) is cut before it: no stored id holds one, so the ids
    /// after `p + "\0" + rest` in bytewise order are exactly those after `p`.
    func snapshots(after: String, limit: Int) async throws -> (snapshots: [Snapshot], next: String?) {
        let after = String(String.UnicodeScalarView(after.unicodeScalars.prefix { $0 != "\u{0}" }))
        return try await classifyingFailures {
            try await database.read { connection in
                let rows = try await Self.snapshots(
                    connection.query(
                        """
                        SELECT \(unescaped: Self.columns) FROM user_snapshots
                        WHERE user_id > \(after) AND NOT deleted ORDER BY user_id LIMIT \(limit + 1)
                        """, logger: logger))
                let page = Array(rows.prefix(limit))
                return (page, rows.count > limit ? page.last?.userID : nil)
            }
        }
    }

    func isHealthy() async -> Bool {
        await database.isHealthy()
    }

    /// Runs `body`; a database failure becomes a `SnapshotStoreError`, classified by `SnapshotStoreError(_:)`.
    private func classifyingFailures<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresDatabaseError {
            throw SnapshotStoreError(error)
        } catch let error as PSQLError {
            throw SnapshotStoreError(PostgresDatabaseError(error))
        }
    }

    private static let columns =
        "user_id, name, email, version, deleted, updated_at, event_id, occurred_at, versioned"

    private static func snapshots(_ rows: PostgresRowSequence) async throws -> [Snapshot] {
        var snapshots: [Snapshot] = []
        for try await (userID, name, email, version, deleted, updatedAt, eventID, occurredAt, versioned) in rows.decode(
            (String, String?, String?, Int64, Bool, String, String, String?, Bool).self)
        {
            snapshots.append(
                Snapshot(
                    userID: userID, name: name, email: email, version: version, deleted: deleted,
                    updatedAt: updatedAt, eventID: eventID, occurredAt: occurredAt, isVersioned: versioned))
        }
        return snapshots
    }
}

extension SnapshotStoreError {
    /// Whose fault a PostgreSQL error is: the one place that decides for this store. What the server refuses for a
    /// value the call carried (`PostgresDatabaseError.isCausedByData`: a NUL or malformed text, a number out of range,
    /// a constraint) is the event's: `.rejected`. Everything else (the server unreachable, shutting down, out of disk,
    /// a lost race it did not resolve) is the database's: `.unavailable`.
    init(_ error: PostgresDatabaseError) {
        self = error.isCausedByData ? .rejected(reason: "\(error)") : .unavailable(reason: "\(error)")
    }
}
