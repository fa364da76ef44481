import EventCodec
import Foundation
import Logging
import PostgresStorage
import Testing
import TestSupport

@testable import OrderService
@testable import SQLiteStorage

/// Whose fault a database failure is, for each backend; real SQLite files, no broker. (The rule for events in the
/// original system's shape is in the store conformance suite, run on both backends.)
struct SnapshotRuleTests {
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

    /// PostgreSQL SQLSTATEs: a data exception (class 22, e.g. 22021 a NUL in text, 22001 too long, 22P02 invalid
    /// text), an integrity violation (class 23) and a value beyond a server limit (54000) are the event's; a
    /// connection failure, a shutdown, a full disk, a lost race, a missing table or no SQLSTATE at all are the
    /// database's.
    @Test(arguments: [
        ("22021", false), ("22001", false), ("22P02", false), ("22003", false), ("23505", false), ("23502", false),
        ("54000", false), ("08006", true), ("57P01", true), ("53100", true), ("40001", true), ("42P01", true),
        (nil, true),
    ] as [(String?, Bool)])
    func postgresFaultsOfTheDatabaseAreUnavailableAndTheRestRejected(sqlState: String?, isDatabaseFault: Bool) {
        let failure = PostgresDatabaseError(sqlState: sqlState, message: "m")
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

private func versioned(_ kind: UserEvent.Kind, _ userID: String, version: Int64, name: String? = nil) -> UserEvent {
    UserEvent(
        kind: kind, userID: userID, name: kind == .deleted ? nil : name,
        email: kind == .deleted ? nil : "\(userID)@example.com", eventID: "ev-\(userID)-\(version)-\(name ?? "")",
        version: version, occurredAt: Date())
}
