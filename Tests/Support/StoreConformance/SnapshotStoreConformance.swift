import EventCodec
import Foundation
import Logging
import Testing

@testable import Delivery
@testable import Messaging
@testable import OrderService

/// What every `SnapshotStore` backend must do, written once and run against SQLite and PostgreSQL.
public enum SnapshotStoreConformance {
    /// The cases; a test target runs each against a backend with `run(_:on:)`.
    public enum Case: String, Sendable, CaseIterable, CustomStringConvertible {
        case newerVersionsApplyOlderAndDuplicatesDoNot
        case aDeleteLeavesATombstoneALateUpdateCannotUndo
        case concurrentEventsInAnyOrderEndAtTheNewest
        case pagesListLiveSnapshotsByUserID
        case unversionedEventsApplyInArrivalOrder
        case anUnversionedEventNeverAppliesOverAVersionedSnapshot
        case aVersionedEventAppliesOverAnUnversionedSnapshotButDoesNotResurrect
        case unversionedRuleHoldsInABatch
        case snapshotsWrittenBeforeTheVersionedColumnStayVersioned
        case textTheDatabaseCannotHoldIsTheEventsFault
        case aMessageTheDatabaseCannotHoldIsDeadLetteredNotHeld

        public var description: String { rawValue }
    }

    /// Runs `case` against a fresh database of `backend`.
    public static func run(_ case: Case, on backend: StoreBackend) async throws {
        if `case` == .snapshotsWrittenBeforeTheVersionedColumnStayVersioned {
            try await withSnapshotStoreMigratedFromTheFirstSchema(backend, insertingBefore: legacyRow) { store in
                try await snapshotsWrittenBeforeTheMigrationStayVersioned(store)
            }
            return
        }
        try await withSnapshotStore(backend) { store in
            switch `case` {
            case .newerVersionsApplyOlderAndDuplicatesDoNot: try await newerVersionsApply(store)
            case .aDeleteLeavesATombstoneALateUpdateCannotUndo: try await tombstones(store)
            case .concurrentEventsInAnyOrderEndAtTheNewest: try await concurrentEvents(store)
            case .pagesListLiveSnapshotsByUserID: try await pages(store)
            case .unversionedEventsApplyInArrivalOrder: try await unversionedInArrivalOrder(store)
            case .anUnversionedEventNeverAppliesOverAVersionedSnapshot: try await unversionedNeverOverVersioned(store)
            case .aVersionedEventAppliesOverAnUnversionedSnapshotButDoesNotResurrect:
                try await versionedOverUnversioned(store)
            case .unversionedRuleHoldsInABatch: try await unversionedInABatch(store)
            case .textTheDatabaseCannotHoldIsTheEventsFault: try await textTheDatabaseCannotHold(store)
            case .aMessageTheDatabaseCannotHoldIsDeadLetteredNotHeld: try await messageTheDatabaseCannotHold(store)
            case .snapshotsWrittenBeforeTheVersionedColumnStayVersioned: break
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

    // MARK: Events without a version (the original system's shape)

    static func unversionedInArrivalOrder(_ store: any SnapshotStore) async throws {
        #expect(try await store.apply(original(.created, "u1", name: "Ann")))
        #expect(try await store.apply(original(.updated, "u1", name: "Ann B")))
        #expect(try await store.apply(original(.updated, "u1", name: "Ann C")))
        let snapshot = try #require(try await store.snapshot(userID: "u1"))
        #expect(snapshot.name == "Ann C" && snapshot.email == "Ann C@example.com" && !snapshot.isVersioned)
        #expect(snapshot.version == 3, "counted here, so the read API's ETag changes")
        #expect(try await !store.apply(original(.updated, "u1", name: "Ann C")), "a repeat of the last one")

        #expect(try await store.apply(original(.deleted, "u1")))
        let tombstone = try #require(try await store.snapshot(userID: "u1"))
        #expect(tombstone.deleted && tombstone.name == nil && !tombstone.isVersioned)
        #expect(try await !store.apply(original(.updated, "u1", name: "Back")), "a tombstone is final")
        #expect(try await !store.apply(original(.created, "u1", name: "Back")), "a tombstone is final")
        #expect(try await store.snapshot(userID: "u1")?.deleted == true)
    }

    static func unversionedNeverOverVersioned(_ store: any SnapshotStore) async throws {
        _ = try await store.apply(event(.created, "u1", version: 2, name: "Real"))
        #expect(try await !store.apply(original(.updated, "u1", name: "Old system")))
        #expect(try await !store.apply(original(.deleted, "u1")))
        let snapshot = try #require(try await store.snapshot(userID: "u1"))
        #expect(snapshot.name == "Real" && snapshot.version == 2 && snapshot.isVersioned && !snapshot.deleted)
    }

    static func versionedOverUnversioned(_ store: any SnapshotStore) async throws {
        _ = try await store.apply(original(.created, "u1", name: "Old"))
        _ = try await store.apply(original(.updated, "u1", name: "Older"))
        // Version 1 is not above the 2 counted here, yet it applies: the two kinds of numbers do not compare.
        #expect(try await store.apply(event(.updated, "u1", version: 1, name: "New")))
        let snapshot = try #require(try await store.snapshot(userID: "u1"))
        #expect(snapshot.name == "New" && snapshot.version == 1 && snapshot.isVersioned)
        // From then on the versioned rule holds exactly.
        #expect(try await !store.apply(event(.updated, "u1", version: 1, name: "Dup")))
        #expect(try await store.apply(event(.updated, "u1", version: 2, name: "Newer")))

        _ = try await store.apply(original(.created, "u2", name: "Gone"))
        _ = try await store.apply(original(.deleted, "u2"))
        #expect(try await !store.apply(event(.updated, "u2", version: 5, name: "Back")))
        #expect(try await store.apply(event(.deleted, "u2", version: 5)), "a delete over a tombstone is fine")
        #expect(try await store.snapshot(userID: "u2")?.deleted == true)
    }

    /// The same rule through `apply(_ events:)`, each event seeing the ones before it in the batch.
    static func unversionedInABatch(_ store: any SnapshotStore) async throws {
        _ = try await store.apply(event(.created, "v", version: 4, name: "Real"))
        let batch = [
            try original(.created, "u", name: "Ann"), try original(.updated, "u", name: "Ann B"),
            try original(.updated, "u", name: "Ann B"), try original(.updated, "v", name: "Old system"),
            try original(.created, "w", name: "Gone"), try original(.deleted, "w"), try original(.created, "w", name: "Back"),
        ]
        #expect(try await store.apply(batch) == [true, true, false, false, true, true, false])
        let u = try #require(try await store.snapshot(userID: "u"))
        #expect(u.name == "Ann B" && u.version == 2 && !u.isVersioned)
        let v = try #require(try await store.snapshot(userID: "v"))
        #expect(v.name == "Real" && v.version == 4 && v.isVersioned)
        #expect(try await store.snapshot(userID: "w")?.deleted == true)
        #expect(try await store.apply([event(.updated, "u", version: 1, name: "New"), event(.updated, "w", version: 9, name: "X")]) == [true, false])
        #expect(try await store.snapshot(userID: "u")?.isVersioned == true)
    }

    /// A row the first schema wrote, before snapshots knew whether they were versioned.
    static let legacyRow = """
        INSERT INTO user_snapshots(user_id, name, email, version, deleted, updated_at, event_id)
        VALUES ('u1', 'Kept', 'k@example.com', 1, false, '2026-01-01T00:00:00.000Z', 'e1')
        """

    /// Such rows were all compared by version: they stay versioned.
    static func snapshotsWrittenBeforeTheMigrationStayVersioned(_ store: any SnapshotStore) async throws {
        #expect(try await !store.apply(original(.updated, "u1", name: "Unversioned")))
        let kept = try #require(try await store.snapshot(userID: "u1"))
        #expect(kept.name == "Kept" && kept.isVersioned && kept.version == 1)
        #expect(try await store.apply(event(.updated, "u1", version: 2, name: "Next")))
    }

    // MARK: Whose fault a failure is

    /// Text a backend cannot store (PostgreSQL text holds no NUL) in any field of an event is that event's fault:
    /// `.rejected`, never `.unavailable` (which would hold the queue as if the database were down). A backend that
    /// can store it applies it. Either way the store goes on applying other events, alone and in batches.
    static func textTheDatabaseCannotHold(_ store: any SnapshotStore) async throws {
        let nul = "\u{0}"
        let events = [
            event(.created, "n1", version: 1, name: "A\(nul)B"),
            UserEvent(
                kind: .created, userID: "n2", name: "Ann", email: "a\(nul)@example.com", eventID: UUID().uuidString,
                version: 1, occurredAt: Date()),
            event(.created, "n3\(nul)", version: 1, name: "Ann"),
            UserEvent(
                kind: .created, userID: "n4", name: "Ann", email: "n4@example.com", eventID: "e\(nul)", version: 1,
                occurredAt: Date()),
            try original(.created, "n5", name: "A\(nul)"),
        ]
        for bad in events {
            for call in ["single", "batch"] {
                do {
                    if call == "single" {
                        _ = try await store.apply(bad)
                    } else {
                        _ = try await store.apply([event(.created, UUID().uuidString, version: 1, name: "Ok"), bad])
                    }
                } catch let error as SnapshotStoreError {
                    guard case .rejected = error else {
                        Issue.record("\(call) apply of \(bad) failed as the database's fault: \(error)")
                        continue
                    }
                }
            }
        }
        #expect(await store.isHealthy())
        // Reads with a NUL, as a client can send in a path or a cursor, answer like any other text.
        _ = try await store.apply(event(.created, "a", version: 1, name: "A"))
        _ = try await store.apply(event(.created, "b", version: 1, name: "B"))
        #expect(try await store.snapshot(userID: "a\(nul)") == nil)
        let after = try await store.snapshots(after: "a\(nul)x", limit: 10).snapshots.map(\.userID)
        #expect(after.contains("b") && !after.contains("a"))
        #expect(try await store.apply(event(.created, "fine", version: 1, name: "Fine")))
        #expect(try await store.apply([event(.updated, "fine", version: 2, name: "Finer")]) == [true])
    }

    /// The same through the order service's delivery handler and the delivery policy (what the loop does with each
    /// attempt): a message with a NUL in its event is, on every backend, applied or retried and then dead-lettered
    /// with the database's reason; never held as if the database were down, alone or in a batch.
    static func messageTheDatabaseCannotHold(_ store: any SnapshotStore) async throws {
        var logger = Logger(label: "StoreConformance.applier")
        logger.logLevel = .critical
        let applier = SnapshotApplier(store: store, logger: logger)
        let policy = DeliveryPolicy(maxAttempts: 3)
        func delivery(_ event: UserEvent) -> Delivery {
            Delivery(
                body: event.encodedBody(), properties: MessageProperties(), redelivered: false, queue: "queue_order",
                deliveryTag: 1, generation: 1)
        }
        let bad = delivery(event(.created, "p", version: 1, name: "A\u{0}B"))
        var last: DeliveryPolicy.Decision?
        for attempt in 1...policy.maxAttempts {
            let outcome: Result<Void, any Error>
            do {
                try await applier.handle(bad)
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            let decision = policy.decide(after: outcome, attempt: attempt)
            if case .hold(let fault) = decision { Issue.record("held as an outage: \(fault)") }
            last = decision
            if case .retry = decision { continue }
            break
        }
        switch last {
        case .ack: break  // a backend that can store a NUL applied it
        case .deadLetter(let deadLetter, _): #expect(deadLetter.reason.contains("22021") || deadLetter.reason.contains("0x00"))
        default: Issue.record("ended with \(String(describing: last))")
        }
        do {
            try await applier.handle(batch: [delivery(event(.created, "q", version: 1, name: "Q")), bad])
        } catch {
            if case .hold = policy.decide(after: .failure(error), attempt: 1) { Issue.record("batch held: \(error)") }
        }
        try await applier.handle(delivery(event(.created, "r", version: 1, name: "R")))
        #expect(try await store.snapshot(userID: "r")?.name == "R")
    }

    /// An event as the original system publishes it: no version, no event id (the body hash stands in).
    static func original(_ kind: UserEvent.Kind, _ userID: String, name: String? = nil) throws -> UserEvent {
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

    static func event(_ kind: UserEvent.Kind, _ user: String, version: Int64, name: String? = nil) -> UserEvent {
        UserEvent(
            kind: kind, userID: user, name: kind == .deleted ? nil : name,
            email: kind == .deleted ? nil : "\(user)@example.com", eventID: UUID().uuidString, version: version,
            occurredAt: Date())
    }
}
