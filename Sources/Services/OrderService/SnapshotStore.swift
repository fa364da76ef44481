import Common

/// The order service's copy of every user. `SQLiteSnapshotStore` is the backend on SQLite.
///
/// An event is applied only when its version is newer than the stored one, checked in the same statement that
/// writes, so duplicates, out-of-order deliveries and competing consumers never regress a snapshot. A delete leaves a
/// tombstone that keeps its version, so a late update cannot bring the user back. Database failures are
/// `SnapshotStoreError.unavailable`.
protocol SnapshotStore: Sendable {
    /// Applies `event` if its version is newer than the stored one; false when it changed nothing (a duplicate or an
    /// older version). Returns after the change committed.
    func apply(_ event: UserEvent) async throws -> Bool

    /// One user's snapshot or tombstone.
    func snapshot(userID: String) async throws -> Snapshot?

    /// Up to `limit` live snapshots (no tombstones) ordered by user id, after `after`; `next` is set when there may
    /// be more.
    func snapshots(after: String, limit: Int) async throws -> (snapshots: [Snapshot], next: String?)

    /// Whether the database answers.
    func isHealthy() async -> Bool
}

/// A user as the order service holds it.
struct Snapshot: Sendable, Equatable {
    var userID: String
    /// Nil in a tombstone.
    var name: String?
    /// Nil in a tombstone.
    var email: String?
    var version: Int64
    /// True for the tombstone a delete leaves.
    var deleted: Bool
    /// When this service applied the event.
    var updatedAt: String
    /// The event applied last.
    var eventID: String
    /// When the user service committed that event.
    var occurredAt: String?
}

/// Why the snapshot store failed a call.
enum SnapshotStoreError: Error, Equatable, CustomStringConvertible {
    /// The database failed the call (cannot be read or written, or refused the change); `reason` is the backend's
    /// error.
    case unavailable(reason: String)

    /// The backend's error, as logged and as put in a dead-letter's `x-error`.
    var description: String {
        switch self {
        case .unavailable(let reason): reason
        }
    }
}
