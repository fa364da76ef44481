import EventCodec
import Foundation
import Logging
import PostgresNIO
import PostgresStorage
import ServiceLifecycle

/// The outbox in PostgreSQL, beside the users: an event is appended in the same transaction as the change it
/// describes. A trigger sends `NOTIFY outbox_appended` with every insert, which PostgreSQL delivers when (and only
/// if) the transaction commits, to whichever instance relays, not only to the one that wrote.
///
/// Several user-service instances share the outbox; one relays at a time. It holds the session advisory lock
/// `relayLock` on a dedicated connection (the lock lives as long as that session), and `LISTEN`s on the same
/// connection. The others try the lock every `lockRetryInterval`: when the holder stops, or its process dies and
/// the server closes its session, one of them takes over within about that interval. Every `livenessInterval` the
/// holder checks that its session still answers (and looks at the outbox, in case a notification was missed); a
/// session that does not answer within that interval counts as lost, and the relay stops publishing.
final class PostgresOutbox: Outbox {
    /// The tables and the trigger; part of the first migration of the users database.
    static let schema = [
        """
        CREATE TABLE outbox (
            seq BIGSERIAL PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            event_type TEXT NOT NULL,
            user_id TEXT NOT NULL,
            body BYTEA NOT NULL,
            traceparent TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT
        )
        """,
        "CREATE INDEX outbox_pending ON outbox(seq) WHERE sent_at IS NULL",
        """
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('outbox_appended', '');
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER outbox_appended AFTER INSERT ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()
        """,
    ]

    /// Why a row was set aside (AMQP cannot carry it); NULL for every row that can be published. Migration 2.
    static let setAsideColumn = "ALTER TABLE outbox ADD COLUMN set_aside_reason TEXT"

    /// The advisory lock whose holder is the relay.
    static let relayLock = PostgresPool.lockKey("swift-user-events:outbox-relay")
    /// How often an instance that is not the relay tries to become it.
    static let lockRetryInterval = Duration.seconds(1)
    /// How often the relay checks that its session (and so its lock) is alive.
    static let livenessInterval = Duration.seconds(5)

    private let database: PostgresPool
    private let keptSentRows: Int64
    private let logger: Logger

    init(database: PostgresPool, keptSentRows: Int, logger: Logger) {
        self.database = database
        self.keptSentRows = Int64(keptSentRows)
        self.logger = logger
    }

    /// Appends `event` in the transaction open on `connection`.
    func append(_ event: UserEvent, traceparent: String?, on connection: PostgresConnection) async throws {
        let body = ByteBuffer(bytes: event.encodedBody())
        let createdAt = Timestamp.format(event.occurredAt ?? Date())
        try await connection.query(
            """
            INSERT INTO outbox(event_id, event_type, user_id, body, traceparent, created_at)
            VALUES (\(event.eventID), \(event.kind.rawValue), \(event.userID), \(body), \(traceparent), \(createdAt))
            """, logger: logger)
    }

    func whileRelaying(_ relay: @escaping @Sendable (AsyncStream<Void>) async -> Void) async throws {
        var failures = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let connection = try await database.dedicatedConnection()
                let finished: Bool
                do {
                    finished = try await relayWhileHoldingLock(on: connection, relay)
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
                if finished { return }
                failures = 0
            } catch {
                if Task.isCancelled { return }
                failures += 1
                let delay = min(Duration.seconds(failures), .seconds(5))
                logger.warning(
                    "outbox relay: database session lost, will try again",
                    metadata: ["error": "\(PostgresDatabaseError(error))", "retry_in": "\(delay)"])
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// Waits for the relay lock on `connection`, then runs `relay` until it returns (true) or the session fails
    /// (false, or a thrown error). False too when shutdown began while waiting.
    private func relayWhileHoldingLock(
        on connection: PostgresConnection, _ relay: @escaping @Sendable (AsyncStream<Void>) async -> Void
    ) async throws -> Bool {
        // Let the server notice a vanished relay machine within about 10 s (it probes the client's socket).
        for setting in ["tcp_keepalives_idle = 5", "tcp_keepalives_interval = 2", "tcp_keepalives_count = 3"] {
            try await connection.query(PostgresQuery(unsafeSQL: "SET \(setting)"), logger: logger)
        }
        while !(try await tryLock(on: connection)) {
            if Task.isShuttingDownGracefully { return true }
            guard (try? await Task.sleep(for: Self.lockRetryInterval)) != nil else { return true }
        }
        let notifications = try await connection.listen("outbox_appended")
        let (commits, commit) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let logger = self.logger
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                await relay(commits)
                return true
            }
            group.addTask {
                for try await _ in notifications { commit.yield() }
                return false
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: Self.livenessInterval)
                    guard try await Self.answers(connection, within: Self.livenessInterval, logger: logger) else {
                        return false
                    }
                    commit.yield()
                }
            }
            let finished = try await group.next() ?? false
            if !finished && !Task.isCancelled {
                logger.warning("outbox relay: lost the database session holding the relay lock; stopping publishing")
            }
            group.cancelAll()
            commit.finish()
            return finished
        }
    }

    private func tryLock(on connection: PostgresConnection) async throws -> Bool {
        var locked = false
        for try await value in try await connection.query(
            "SELECT pg_try_advisory_lock(\(Self.relayLock))", logger: logger
        ).decode(Bool.self) {
            locked = value
        }
        return locked
    }

    /// Whether `connection` answers `SELECT 1` within `timeout`.
    private static func answers(_ connection: PostgresConnection, within timeout: Duration, logger: Logger) async throws
        -> Bool
    {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await connection.query("SELECT 1", logger: logger).collect().count == 1
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Sequence values are taken at insert, and transactions commit in any order.
    var positionsFollowCommitOrder: Bool { false }

    func pending(after position: Int64?, limit: Int) async throws -> [OutboxEntry] {
        let position = position ?? 0
        return try await database.read { connection in
            var entries: [OutboxEntry] = []
            let rows = try await connection.query(
                """
                SELECT seq, event_id, event_type, user_id, body, traceparent, created_at
                FROM outbox WHERE sent_at IS NULL AND set_aside_reason IS NULL AND seq > \(position)
                ORDER BY seq LIMIT \(limit)
                """, logger: logger)
            for try await (seq, eventID, eventType, userID, body, traceparent, createdAt) in rows.decode(
                (Int64, String, String, String, ByteBuffer, String?, String).self)
            {
                entries.append(
                    OutboxEntry(
                        seq: seq, eventID: eventID, eventType: eventType, userID: userID,
                        body: Array(body.readableBytesView), traceparent: traceparent,
                        createdAt: Timestamp.parse(createdAt) ?? Date()))
            }
            return entries
        }
    }

    /// Marks the rows sent and, in the same transaction, prunes sent rows more than `keptSentRows` before them.
    func markSent(_ positions: [Int64]) async throws {
        guard let lowest = positions.min() else { return }
        let now = Timestamp.format(Date())
        let horizon = lowest - keptSentRows
        try await database.transaction { connection in
            try await connection.query(
                "UPDATE outbox SET sent_at = \(now) WHERE seq = ANY(\(positions)) AND sent_at IS NULL",
                logger: logger)
            try await connection.query(
                "DELETE FROM outbox WHERE seq < \(horizon) AND sent_at IS NOT NULL", logger: logger)
        }
    }

    func setAside(_ position: Int64, reason: String) async throws {
        try await database.transaction { connection in
            try await connection.query(
                "UPDATE outbox SET set_aside_reason = \(reason) WHERE seq = \(position) AND sent_at IS NULL",
                logger: logger)
        }
    }

    func backlog() async throws -> Int {
        try await count("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND set_aside_reason IS NULL")
    }

    func setAsideCount() async throws -> Int {
        try await count("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND set_aside_reason IS NOT NULL")
    }

    private func count(_ query: PostgresQuery) async throws -> Int {
        try await database.read { connection in
            var count = 0
            for try await value in try await connection.query(query, logger: logger).decode(Int.self) {
                count = value
            }
            return count
        }
    }
}
