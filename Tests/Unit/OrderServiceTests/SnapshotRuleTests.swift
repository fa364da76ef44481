import Common
import Foundation
import Logging
import Testing
import TestSupport

@testable import OrderService
@testable import Storage

/// The store's rule for events in the original system's shape (no `version`), and whose fault a database failure
/// is; real SQLite files, no broker.
struct SnapshotRuleTests {
    @Test func unversionedEventsApplyInArrivalOrder() async throws {
        try await withStore { store, _ in
            #expect(try await store.apply(original(.created, "u1", name: "Ann")))
            #expect(try await store.apply(original(.updated, "u1", name: "Ann B")))
            #expect(try await store.apply(original(.updated, "u1", name: "Ann C")))
            let snapshot = try #require(try await store.snapshot(userID: "u1"))
            #expect(snapshot.name == "Ann C" && snapshot.email == "Ann C@example.com" && !snapshot.isVersioned)
            #expect(snapshot.version == 3, "counted here, so the read API's ETag changes")
            #expect(try await !store.apply(original(.updated, "u1", name: "Ann C")), "a repeat of the last one")

            #expect(try await store.apply(original(.deleted, "u1")))
            let tombstone = try #require(try await store.snapshot(userID: "u1"))
            #expect(tombstone.deleted && tombstone.name == nil)
            #expect(try await !store.apply(original(.updated, "u1", name: "Back")), "a tombstone is final")
            #expect(try await !store.apply(original(.created, "u1", name: "Back")), "a tombstone is final")
            #expect(try await store.snapshot(userID: "u1")?.deleted == true)
        }
    }

    @Test func anUnversionedEventNeverAppliesOverAVersionedSnapshot() async throws {
        try await withStore { store, _ in
            _ = try await store.apply(versioned(.created, "u1", version: 2, name: "Real"))
            #expect(try await !store.apply(original(.updated, "u1", name: "Old system")))
            #expect(try await !store.apply(original(.deleted, "u1")))
            let snapshot = try #require(try await store.snapshot(userID: "u1"))
            #expect(snapshot.name == "Real" && snapshot.version == 2 && snapshot.isVersioned && !snapshot.deleted)
        }
    }

    @Test func aVersionedEventAppliesOverAnUnversionedSnapshotButDoesNotResurrect() async throws {
        try await withStore { store, _ in
            _ = try await store.apply(original(.created, "u1", name: "Old"))
            _ = try await store.apply(original(.updated, "u1", name: "Older"))
            // Version 1 is not above the 2 counted here, yet it applies: the two kinds of numbers do not compare.
            #expect(try await store.apply(versioned(.updated, "u1", version: 1, name: "New")))
            let snapshot = try #require(try await store.snapshot(userID: "u1"))
            #expect(snapshot.name == "New" && snapshot.version == 1 && snapshot.isVersioned)
            // From then on the versioned rule holds exactly.
            #expect(try await !store.apply(versioned(.updated, "u1", version: 1, name: "Dup")))
            #expect(try await store.apply(versioned(.updated, "u1", version: 2, name: "Newer")))

            _ = try await store.apply(original(.created, "u2", name: "Gone"))
            _ = try await store.apply(original(.deleted, "u2"))
            #expect(try await !store.apply(versioned(.updated, "u2", version: 5, name: "Back")))
            #expect(try await store.apply(versioned(.deleted, "u2", version: 5)), "a delete over a tombstone is fine")
            #expect(try await store.snapshot(userID: "u2")?.deleted == true)
        }
    }

    /// A file made before the `versioned` column keeps comparing versions.
    @Test func snapshotsWrittenBeforeTheMigrationStayVersioned() async throws {
        let directory = try temporaryDirectory("SnapshotRuleTests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/orders.sqlite"
        let old = try SQLiteConnection(path: path)
        try old.migrate(Array(SQLiteSnapshotStore.migrations.prefix(1)))
        try old.execute(
            """
            INSERT INTO user_snapshots(user_id, name, email, version, deleted, updated_at, event_id)
            VALUES ('u1', 'Kept', 'k@example.com', 1, 0, '2026-01-01T00:00:00.000Z', 'e1')
            """)
        old.close()
        let store = try SQLiteSnapshotStore(path: path, logger: quiet)
        #expect(try await !store.apply(original(.updated, "u1", name: "Unversioned")))
        #expect(try await store.snapshot(userID: "u1")?.name == "Kept")
    }

    // MARK: Whose fault a failure is

    /// SQLite result codes (primary and extended): full, read-only, I/O, busy, locked, can't open, corrupt, not a
    /// database, and two extended I/O errors are the database's; constraint, too big, generic error, misuse and a
    /// UNIQUE violation are the event's.
    @Test(arguments: [
        (13, true), (8, true), (10, true), (5, true), (6, true), (14, true), (11, true), (26, true), (522, true),
        (266, true), (19, false), (18, false), (1, false), (21, false), (2067, false),
    ] as [(Int32, Bool)])
    func faultsOfTheDatabaseAreUnavailableAndTheRestRejected(resultCode: Int32, isDatabaseFault: Bool) {
        let failure = DatabaseError(resultCode: resultCode, message: "m")
        let error = SnapshotStoreError(failure)
        #expect(error == (isDatabaseFault ? .unavailable(reason: "\(failure)") : .rejected(reason: "\(failure)")))
    }

    @Test func aDatabaseLockedBeyondItsTimeoutIsUnavailableNotTheEventsFault() async throws {
        try await withStore { store, path in
            let other = try SQLiteConnection(path: path)
            try other.execute("BEGIN EXCLUSIVE")
            defer {
                try? other.execute("ROLLBACK")
                other.close()
            }
            do {
                _ = try await store.apply(versioned(.created, "u1", version: 1, name: "A"))
                Issue.record("applied through an exclusive lock")
            } catch let error as SnapshotStoreError {
                guard case .unavailable = error else {
                    Issue.record("a busy database counted against the event: \(error)")
                    return
                }
            }
        }
    }
}

private let quiet: Logger = {
    var logger = Logger(label: "SnapshotRuleTests")
    logger.logLevel = .critical
    return logger
}()

private func withStore(_ body: (SQLiteSnapshotStore, String) async throws -> Void) async throws {
    let directory = try temporaryDirectory("SnapshotRuleTests")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = "\(directory)/orders.sqlite"
    try await body(try SQLiteSnapshotStore(path: path, logger: quiet), path)
}

/// An event as the original system publishes it: no version, no event id (the body hash stands in).
private func original(_ kind: UserEvent.Kind, _ userID: String, name: String? = nil) throws -> UserEvent {
    var fields = ["event": kind.rawValue, "user_id": userID]
    if kind != .deleted {
        fields["name"] = name ?? ""
        fields["email"] = "\(name ?? "")@example.com"
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    let event = try UserEvent.decode(body: Array(try encoder.encode(fields)))
    #expect(!event.isVersioned)
    return event
}

private func versioned(_ kind: UserEvent.Kind, _ userID: String, version: Int64, name: String? = nil) -> UserEvent {
    UserEvent(
        kind: kind, userID: userID, name: kind == .deleted ? nil : name,
        email: kind == .deleted ? nil : "\(userID)@example.com", eventID: "ev-\(userID)-\(version)-\(name ?? "")",
        version: version, occurredAt: Date())
}
