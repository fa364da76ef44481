import Foundation

/// The transactional outbox as its relay sees it: events committed together with their changes, waiting to be
/// published. `SQLiteOutbox` and `PostgresOutbox` are the backends; each appends rows in its own transactions.
///
/// Rows are found by "not yet marked sent". A position watermark narrows that only where positions follow commit
/// order (`positionsFollowCommitOrder`, SQLite's one writer): PostgreSQL sequences commit out of order, so there a
/// row with a lower position may become visible after a higher one was published.
protocol Outbox: Sendable {
    /// True when a row committed later always has a higher position than every row committed before it, so a relay
    /// that published every pending row up to a position may read only the rows after it.
    var positionsFollowCommitOrder: Bool { get }

    /// Runs `relay` while this process is the outbox's only relay, with a stream that yields after transactions that
    /// appended events commit (coalesced). With one writer process (SQLite) that is at once and until `relay`
    /// returns; with several instances on one database it waits its turn, and cancels `relay` if the turn is lost
    /// (then waits again). Returns when `relay` returned, or when graceful shutdown began while waiting.
    func whileRelaying(_ relay: @escaping @Sendable (_ commits: AsyncStream<Void>) async -> Void) async throws

    /// Up to `limit` events not yet marked sent with a position after `position` (nil: any), oldest position first.
    /// The relay leaves out those it already published and will mark.
    func pending(after position: Int64?, limit: Int) async throws -> [OutboxEntry]

    /// Marks exactly the rows at `positions` sent (the broker confirmed them), and prunes old sent rows.
    func markSent(_ positions: [Int64]) async throws

    /// Sets the row at `position` aside with `reason`: AMQP cannot carry it, so it is kept (never pruned) but no
    /// longer pending. Clearing `set_aside_reason` releases it (docs: operations).
    func setAside(_ position: Int64, reason: String) async throws

    /// How many events wait to be published (rows set aside are not waiting).
    func backlog() async throws -> Int

    /// How many rows are set aside.
    func setAsideCount() async throws -> Int
}

extension Outbox {
    /// Up to `limit` events not yet marked sent, oldest position first.
    func pending(limit: Int) async throws -> [OutboxEntry] {
        try await pending(after: nil, limit: limit)
    }
}

/// A committed event waiting in the outbox to be published.
struct OutboxEntry: Sendable, Equatable {
    /// The row's position: the order the relay publishes in. A user's events have increasing positions in version
    /// order (each change of a user is written after the previous one committed).
    var seq: Int64
    var eventID: String
    var eventType: String
    var userID: String
    /// The event's JSON, as published.
    var body: [UInt8]
    var traceparent: String?
    var createdAt: Date
}
