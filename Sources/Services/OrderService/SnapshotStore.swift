import EventCodec

/// The order service's copy of every user. `SQLiteSnapshotStore` is the backend on SQLite.
///
/// An event is applied only when its version is newer than the stored one, checked in the same statement that
/// writes, so duplicates, out-of-order deliveries and competing consumers never regress a snapshot. A delete leaves a
/// tombstone that keeps its version, so a late update cannot bring the user back.
///
/// Events without a version (the original system's shape, `UserEvent.isVersioned` false) carry no order: such an
/// event applies over a snapshot made by unversioned events, in arrival order (except a repeat of the event applied
/// last), and never over a versioned snapshot or a tombstone; a versioned event always applies over an unversioned
/// snapshot, except that it cannot bring back an unversioned tombstone. Every backend must keep this rule in its
/// conditional write (PostgreSQL: the same `ON CONFLICT ... DO UPDATE ... WHERE`, with a `versioned` column).
///
/// Failures are `SnapshotStoreError`: `.unavailable` when the database itself is at fault, `.rejected` when this
/// event is; each backend classifies its own error codes in one place.
protocol SnapshotStore: Sendable {
    /// Applies `event` if its version is newer than the stored one; false when it changed nothing (a duplicate or an
    /// older version). Returns after the change committed.
    func apply(_ event: UserEvent) async throws -> Bool

    /// Applies `events` in order, each by the same rule as ``apply(_:)``, in one transaction: all committed or none;
    /// returns for each whether it changed anything.
    func apply(_ events: [UserEvent]) async throws -> [Bool]

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
    /// False while the snapshot was made by events without a version only.
    var isVersioned: Bool = true
}

/// Why the snapshot store failed a call.
enum SnapshotStoreError: Error, Equatable, CustomStringConvertible {
    /// The database itself is at fault (disk full, read-only, I/O error, busy beyond its timeout, cannot open): it
    /// will pass, and no event can be applied until then. `reason` is the backend's error.
    case unavailable(reason: String)
    /// The database refused this call for something in it (a constraint, a value too big): the event's fault.
    case rejected(reason: String)

    /// The backend's error, as logged and as put in a dead-letter's `x-error`.
    var description: String {
        switch self {
        case .unavailable(let reason), .rejected(let reason): reason
        }
    }
}
