import EventCodec
import Foundation
import Logging
import SQLiteStorage
import Testing
import TestSupport

@testable import OrderService

/// The snapshot store on real SQLite files, without a broker: only newer versions apply, deletes leave tombstones.
struct SQLiteSnapshotStoreTests {
    @Test func onlyANewerVersionIsApplied() async throws {
        try await withSnapshotStore { store, _ in
            #expect(try await store.apply(event(.created, "u1", version: 1, name: "Ann")))
            #expect(try await !store.apply(event(.created, "u1", version: 1, name: "Ann")), "a duplicate")
            #expect(try await store.apply(event(.updated, "u1", version: 3, name: "Ann C")))
            #expect(try await !store.apply(event(.updated, "u1", version: 2, name: "Ann B")), "an older version")

            let snapshot = try #require(try await store.snapshot(userID: "u1"))
            #expect(snapshot.version == 3 && snapshot.name == "Ann C" && !snapshot.deleted)
            #expect(snapshot.eventID == "ev-u1-3")
            #expect(try await store.snapshot(userID: "nobody") == nil)
        }
    }

    @Test func shuffledAndDuplicatedEventsEndAtTheHighestVersion() async throws {
        try await withSnapshotStore { store, _ in
            let events = (1...20).map { event($0 == 1 ? .created : .updated, "u1", version: Int64($0), name: "v\($0)") }
            let applied = try await withThrowingTaskGroup(of: Bool.self) { group in
                for event in (events + events).shuffled() {
                    group.addTask { try await store.apply(event) }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            let snapshot = try #require(try await store.snapshot(userID: "u1"))
            #expect(snapshot.version == 20 && snapshot.name == "v20")
            #expect(applied >= 1 && applied <= 20)
        }
    }

    @Test func aDeleteLeavesATombstoneThatALateUpdateCannotUndo() async throws {
        try await withSnapshotStore { store, _ in
            _ = try await store.apply(event(.created, "u1", version: 1, name: "Bo"))
            #expect(try await store.apply(event(.deleted, "u1", version: 3)))
            #expect(try await !store.apply(event(.updated, "u1", version: 2, name: "Late")))

            let tombstone = try #require(try await store.snapshot(userID: "u1"))
            #expect(tombstone.deleted && tombstone.version == 3)
            #expect(tombstone.name == nil && tombstone.email == nil)
            // A delete that arrives first is a tombstone too: the create after it changes nothing.
            #expect(try await store.apply(event(.deleted, "u2", version: 2)))
            #expect(try await !store.apply(event(.created, "u2", version: 1, name: "Never")))
            #expect(try await store.snapshot(userID: "u2")?.deleted == true)
        }
    }

    @Test func pagesListLiveSnapshotsByUserID() async throws {
        try await withSnapshotStore { store, _ in
            for id in ["u5", "u3", "u1", "u4", "u2"] {
                _ = try await store.apply(event(.created, id, version: 1, name: id))
            }
            _ = try await store.apply(event(.deleted, "u3", version: 2))
            var seen: [String] = []
            var after = ""
            var pages = 0
            while pages < 10 {
                let page = try await store.snapshots(after: after, limit: 2)
                seen += page.snapshots.map(\.userID)
                pages += 1
                guard let next = page.next else { break }
                after = next
            }
            #expect(seen == ["u1", "u2", "u4", "u5"])
            #expect(pages == 2)
        }
    }

    @Test func aDatabaseFailureIsUnavailableAndTheStoreStaysHealthy() async throws {
        try await withSnapshotStore { store, path in
            try SQLiteConnection(path: path).execute(
                """
                CREATE TRIGGER poison BEFORE INSERT ON user_snapshots WHEN NEW.user_id = 'poison'
                BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;
                """)
            do {
                _ = try await store.apply(event(.created, "poison", version: 1, name: "P"))
                Issue.record("the poisoned row was applied")
            } catch let error as SnapshotStoreError {
                #expect("\(error)".contains("poisoned row"))
            }
            #expect(await store.isHealthy())
            #expect(try await store.apply(event(.created, "fine", version: 1, name: "F")))
        }
    }

    @Test func aBatchAppliesEachRowByTheVersionRuleInOrder() async throws {
        try await withSnapshotStore { store, _ in
            _ = try await store.apply(event(.created, "u0", version: 5, name: "Zed"))
            let applied = try await store.apply([
                event(.created, "u1", version: 1, name: "Ann"),
                event(.updated, "u1", version: 3, name: "Ann C"),
                event(.updated, "u1", version: 2, name: "Ann B"),
                event(.updated, "u0", version: 4, name: "Old"),
                event(.created, "u2", version: 1, name: "Bo"),
                event(.created, "u2", version: 1, name: "Bo"),
                event(.deleted, "u2", version: 2),
            ])
            #expect(applied == [true, true, false, false, true, false, true])
            #expect(try await store.snapshot(userID: "u1")?.name == "Ann C")
            #expect(try await store.snapshot(userID: "u0")?.name == "Zed")
            #expect(try await store.snapshot(userID: "u2")?.deleted == true)
        }
    }

    @Test func aBatchWithARowTheDatabaseRefusesCommitsNoneOfIt() async throws {
        try await withSnapshotStore { store, path in
            try SQLiteConnection(path: path).execute(
                """
                CREATE TRIGGER poison BEFORE INSERT ON user_snapshots WHEN NEW.user_id = 'poison'
                BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;
                """)
            await #expect(throws: SnapshotStoreError.self) {
                _ = try await store.apply([
                    event(.created, "a", version: 1, name: "A"), event(.created, "poison", version: 1, name: "P"),
                    event(.created, "b", version: 1, name: "B"),
                ])
            }
            #expect(try await store.snapshot(userID: "a") == nil, "rolled back with the batch")
            #expect(try await store.snapshot(userID: "b") == nil)
            #expect(try await store.apply([event(.created, "a", version: 1, name: "A")]) == [true])
        }
    }
}

/// A `SQLiteSnapshotStore` on a fresh file in a temporary directory, removed afterwards.
private func withSnapshotStore<T>(
    _ body: (_ store: SQLiteSnapshotStore, _ path: String) async throws -> T
) async throws -> T {
    let directory = try temporaryDirectory("OrderServiceTests")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = "\(directory)/orders.sqlite"
    var logger = Logger(label: "OrderServiceTests")
    logger.logLevel = .warning
    return try await body(try SQLiteSnapshotStore(path: path, logger: logger), path)
}

private func event(_ kind: UserEvent.Kind, _ userID: String, version: Int64, name: String? = nil) -> UserEvent {
    UserEvent(
        kind: kind, userID: userID, name: kind == .deleted ? nil : name,
        email: kind == .deleted ? nil : "\(userID)@example.com", eventID: "ev-\(userID)-\(version)", version: version,
        occurredAt: Date())
}
