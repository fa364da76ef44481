import Common
import Foundation
import Testing

@testable import OrderService

/// What every `SnapshotStore` backend must do, written once and run against SQLite and PostgreSQL.
public enum SnapshotStoreConformance {
    /// The cases; a test target runs each against a backend with `run(_:on:)`.
    public enum Case: String, Sendable, CaseIterable, CustomStringConvertible {
        case newerVersionsApplyOlderAndDuplicatesDoNot
        case aDeleteLeavesATombstoneALateUpdateCannotUndo
        case concurrentEventsInAnyOrderEndAtTheNewest
        case pagesListLiveSnapshotsByUserID

        public var description: String { rawValue }
    }

    /// Runs `case` against a fresh database of `backend`.
    public static func run(_ case: Case, on backend: StoreBackend) async throws {
        try await withSnapshotStore(backend) { store in
            switch `case` {
            case .newerVersionsApplyOlderAndDuplicatesDoNot: try await newerVersionsApply(store)
            case .aDeleteLeavesATombstoneALateUpdateCannotUndo: try await tombstones(store)
            case .concurrentEventsInAnyOrderEndAtTheNewest: try await concurrentEvents(store)
            case .pagesListLiveSnapshotsByUserID: try await pages(store)
            }
        }
    }

    static func newerVersionsApply(_ store: any SnapshotStore) async throws {
        #expect(try await store.apply(event(.created, "u1", version: 1, name: "Ann")))
        #expect(try await store.apply(event(.updated, "u1", version: 3, name: "Anna")))
        #expect(try await store.apply(event(.updated, "u1", version: 2, name: "Old")) == false)
        #expect(try await store.apply(event(.updated, "u1", version: 3, name: "Duplicate")) == false)
        let snapshot = try #require(try await store.snapshot(userID: "u1"))
        #expect(snapshot.name == "Anna" && snapshot.version == 3 && !snapshot.deleted)
        #expect(snapshot.email == "u1@example.com")
        #expect(try await store.snapshot(userID: "nobody") == nil)
        #expect(await store.isHealthy())
    }

    static func tombstones(_ store: any SnapshotStore) async throws {
        #expect(try await store.apply(event(.created, "u1", version: 1, name: "Ann")))
        #expect(try await store.apply(event(.deleted, "u1", version: 3)))
        #expect(try await store.apply(event(.updated, "u1", version: 2, name: "Late")) == false)
        let tombstone = try #require(try await store.snapshot(userID: "u1"))
        #expect(tombstone.deleted && tombstone.version == 3 && tombstone.name == nil && tombstone.email == nil)
        // A delete that arrives first leaves a tombstone too.
        #expect(try await store.apply(event(.deleted, "u2", version: 2)))
        #expect(try await store.apply(event(.created, "u2", version: 1, name: "Ben")) == false)
        #expect(try await store.snapshot(userID: "u2")?.deleted == true)
    }

    static func concurrentEvents(_ store: any SnapshotStore) async throws {
        let users = (0..<4).map { "user-\($0)" }
        let last: Int64 = 30
        var events: [UserEvent] = []
        for user in users {
            events.append(event(.created, user, version: 1, name: "v1"))
            for version in 2...last { events.append(event(.updated, user, version: version, name: "v\(version)")) }
            // Each event twice, as redeliveries bring them.
            events.append(event(.updated, user, version: last, name: "v\(last)"))
        }
        let applied = try await withThrowingTaskGroup(of: Bool.self) { group in
            for event in events.shuffled() { group.addTask { try await store.apply(event) } }
            return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(applied >= users.count && applied <= events.count - users.count)
        for user in users {
            let snapshot = try await store.snapshot(userID: user)
            #expect(snapshot?.version == last && snapshot?.name == "v\(last)")
        }
    }

    static func pages(_ store: any SnapshotStore) async throws {
        for user in ["b", "a", "d", "c", "E"] { _ = try await store.apply(event(.created, user, version: 1, name: user)) }
        _ = try await store.apply(event(.deleted, "c", version: 2))
        let first = try await store.snapshots(after: "", limit: 2)
        // Bytewise order: upper case first.
        #expect(first.snapshots.map(\.userID) == ["E", "a"])
        let next = try #require(first.next)
        let rest = try await store.snapshots(after: next, limit: 10)
        #expect(rest.snapshots.map(\.userID) == ["b", "d"] && rest.next == nil)
    }

    static func event(_ kind: UserEvent.Kind, _ user: String, version: Int64, name: String? = nil) -> UserEvent {
        UserEvent(
            kind: kind, userID: user, name: kind == .deleted ? nil : name,
            email: kind == .deleted ? nil : "\(user)@example.com", eventID: UUID().uuidString, version: version,
            occurredAt: Date())
    }
}
