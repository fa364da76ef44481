import EventCodec
import Foundation
import SQLiteStorage

/// The outbox in `users.sqlite`: an event is appended in the same transaction as the change it describes, so it
/// exists exactly when that change was committed, and `appended` yields once that transaction has committed.
/// Positions are assigned by the one writer, in commit order.
///
/// It shares the user store's writer (its rows ride the same group commits) and reader.
final class SQLiteOutbox: Outbox {
    /// The outbox table; part of the first migration of `users.sqlite` (`SQLiteUserStore.migrations`).
    static let table = """
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

    /// Why a row was set aside (AMQP cannot carry it); NULL for every row that can be published. Migration 4.
    static let setAsideColumn = "ALTER TABLE outbox ADD COLUMN set_aside_reason TEXT;"

    let appended: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation
    private let writer: DatabaseWriter
    private let reader: DatabaseReader
    /// How many sent rows are kept (for inspection and replay) before older ones are pruned.
    private let keptSentRows: Int64

    init(writer: DatabaseWriter, reader: DatabaseReader, keptSentRows: Int) {
        self.writer = writer
        self.reader = reader
        self.keptSentRows = Int64(keptSentRows)
        (appended, signal) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Appends `event` in the transaction open on `db`; `appended` yields when that transaction commits, and never
    /// if it rolls back.
    func append(_ event: UserEvent, traceparent: String?, in db: SQLiteConnection) throws {
        try db.run(
            """
            INSERT INTO outbox(event_id, event_type, user_id, body, traceparent, created_at)
            VALUES (?, ?, ?, ?, ?, ?)
            """,
            event.eventID, event.kind.rawValue, event.userID, event.encodedBody(), traceparent,
            Timestamp.format(event.occurredAt ?? Date()))
        db.afterCommit { [signal] in signal.yield() }
    }

    /// One process writes the file: it is the relay from the start.
    func whileRelaying(_ relay: @escaping @Sendable (AsyncStream<Void>) async -> Void) async throws {
        await relay(appended)
    }

    /// The one writer assigns positions in commit order.
    var positionsFollowCommitOrder: Bool { true }

    func pending(after position: Int64?, limit: Int) async throws -> [OutboxEntry] {
        try await reader.read { db in
            try db.query(
                """
                SELECT seq, event_id, event_type, user_id, body, traceparent, created_at
                FROM outbox WHERE sent_at IS NULL AND set_aside_reason IS NULL AND seq > ? ORDER BY seq LIMIT ?
                """, position ?? 0, limit
            ).map { row in
                OutboxEntry(
                    seq: row.int64("seq") ?? 0, eventID: row.string("event_id") ?? "",
                    eventType: row.string("event_type") ?? "", userID: row.string("user_id") ?? "",
                    body: row.blob("body") ?? [], traceparent: row.string("traceparent"),
                    createdAt: row.string("created_at").flatMap(Timestamp.parse) ?? Date())
            }
        }
    }

    /// Marks the rows sent and, in the same transaction, prunes sent rows more than `keptSentRows` before them.
    func markSent(_ positions: [Int64]) async throws {
        guard let lowest = positions.min() else { return }
        let now = Timestamp.format(Date())
        let keptSentRows = self.keptSentRows
        let list = "[" + positions.map(String.init).joined(separator: ",") + "]"
        try await writer.write { db in
            try db.run(
                "UPDATE outbox SET sent_at = ? WHERE seq IN (SELECT value FROM json_each(?)) AND sent_at IS NULL",
                now, list)
            try db.run("DELETE FROM outbox WHERE seq < ? AND sent_at IS NOT NULL", lowest - keptSentRows)
        }
    }

    func setAside(_ position: Int64, reason: String) async throws {
        try await writer.write { db in
            try db.run("UPDATE outbox SET set_aside_reason = ? WHERE seq = ? AND sent_at IS NULL", reason, position)
        }
    }

    func backlog() async throws -> Int {
        try await reader.read { db in
            try db.queryFirst("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL AND set_aside_reason IS NULL")?
                .int("n") ?? 0
        }
    }

    func setAsideCount() async throws -> Int {
        try await reader.read { db in
            try db.queryFirst("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL AND set_aside_reason IS NOT NULL")?
                .int("n") ?? 0
        }
    }
}
