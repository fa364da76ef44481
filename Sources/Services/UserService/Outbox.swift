import Foundation

/// The transactional outbox as its relay sees it: events committed together with their changes, waiting to be
/// published. `SQLiteOutbox` is the backend on SQLite; each backend appends rows in its own transactions.
protocol Outbox: Sendable {
    /// Yields after a transaction that appended events has committed (signals are coalesced). One relay reads it.
    var appended: AsyncStream<Void> { get }

    /// Up to `limit` events not yet marked sent, in commit order, after `position`: the relay passes the last row
    /// the broker confirmed, so rows published but not yet marked are not read again. That is sound while positions
    /// are assigned in commit order (SQLite's single writer); a backend whose sequences commit out of order must not
    /// skip an unsent row because of its position.
    func pending(after position: Int64, limit: Int) async throws -> [OutboxEntry]

    /// Marks the rows in `positions` sent (the broker confirmed them) and prunes old sent rows.
    func markSent(_ positions: ClosedRange<Int64>) async throws

    /// How many events wait to be published.
    func backlog() async throws -> Int
}

/// A committed event waiting in the outbox to be published.
struct OutboxEntry: Sendable, Equatable {
    /// The row's position in commit order.
    var seq: Int64
    var eventID: String
    var eventType: String
    var userID: String
    /// The event's JSON, as published.
    var body: [UInt8]
    var traceparent: String?
    var createdAt: Date
}
