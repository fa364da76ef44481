import EventCodec
import DatabaseTestSupport
import Foundation
import Logging
import PostgresStorage
import StoreConformance
import Testing

@testable import OrderService
@testable import UserService

/// Two instances of a service on one PostgreSQL database: each has its own connection pool, as two processes would,
/// and the guarantees hold across them.
@Suite(.timeLimit(.minutes(3)))
struct TwoInstancesTests {
    @Test func anEmailIsUniqueAcrossInstances() async throws {
        try await withTwoUserStores { (first, second) async throws in
            for index in 0..<10 {
                let outcomes = await withTaskGroup(of: Result<CreateOutcome, any Error>.self) { group in
                    group.addTask {
                        await outcome { try await first.create(name: "A", email: "same\(index)@example.com", traceparent: "t", idempotency: nil) }
                    }
                    group.addTask {
                        await outcome { try await second.create(name: "B", email: "SAME\(index)@example.com", traceparent: "t", idempotency: nil) }
                    }
                    return await group.reduce(into: [Result<CreateOutcome, any Error>]()) { $0.append($1) }
                }
                let created = outcomes.filter { (try? $0.get()) != nil }
                let refused = outcomes.filter { if case .failure(let error) = $0 { (error as? UserStoreError) == .emailTaken } else { false } }
                #expect(created.count == 1 && refused.count == 1, "email \(index): \(outcomes)")
            }
            #expect(try await first.outbox.backlog() == 10)
        }
    }

    @Test func concurrentPatchesFromTwoInstancesGetConsecutiveVersions() async throws {
        try await withTwoUserStores { (first, second) async throws in
            let outcome = try await first.create(name: "Ann", email: "ann@example.com", traceparent: "t", idempotency: nil)
            guard case .created(let ann) = outcome else { throw TestError("not created: \(outcome)") }
            let perInstance = 12
            let versions = try await withThrowingTaskGroup(of: Int64.self) { group in
                for index in 0..<perInstance {
                    for (label, store) in [("a", first), ("b", second)] {
                        group.addTask {
                            try await store.update(
                                id: ann.id, patch: UserPatch(name: "\(label)\(index)"), condition: .any, traceparent: "t"
                            ).version
                        }
                    }
                }
                return try await group.reduce(into: [Int64]()) { $0.append($1) }
            }
            let last = Int64(2 * perInstance + 1)
            #expect(versions.sorted() == Array(2...last))
            // The outbox (oldest position first) holds one event per version, in version order.
            let events = try await second.outbox.pending(limit: 1_000).map { try UserEvent.decode(body: $0.body) }
            #expect(events.map(\.version) == Array(1...last))
            #expect(Set(events.map(\.eventID)).count == events.count)
        }
    }

    @Test func ifMatchAndIdempotencyKeysHoldAcrossInstances() async throws {
        try await withTwoUserStores { (first, second) async throws in
            let key = IdempotencyKey(key: "key", name: "Ann", email: "ann@example.com")
            let outcomes = try await withThrowingTaskGroup(of: CreateOutcome.self) { group in
                for store in [first, second, first, second] {
                    group.addTask { try await store.create(name: "Ann", email: "ann@example.com", traceparent: "t", idempotency: key) }
                }
                return try await group.reduce(into: [CreateOutcome]()) { $0.append($1) }
            }
            let created: [User] = outcomes.compactMap { if case .created(let user) = $0 { user } else { nil } }
            let replayed: [User] = outcomes.compactMap { if case .replayed(let user) = $0 { user } else { nil } }
            #expect(created.count == 1 && replayed.count == 3)
            let ann = try #require(created.first)
            #expect(replayed.allSatisfy { $0 == ann })

            _ = try await first.update(id: ann.id, patch: UserPatch(name: "Anna"), condition: .oneOf([1]), traceparent: "t")
            do {
                _ = try await second.update(id: ann.id, patch: UserPatch(name: "Anne"), condition: .oneOf([1]), traceparent: "t")
                Issue.record("a stale If-Match was accepted by the other instance")
            } catch let error as UserStoreError {
                #expect(error == .versionMismatch(current: 2))
            }
        }
    }

    @Test func twoOrderServiceInstancesCompetingEndAtTheNewestState() async throws {
        let url = try await TestPostgres.shared().freshDatabase("orders")
        try await withPostgresDatabase(url, name: "orders", migrations: PostgresSnapshotStore.migrations) { one in
            try await withPostgresDatabase(url, name: "orders", migrations: PostgresSnapshotStore.migrations) { two in
                let stores = [
                    PostgresSnapshotStore(database: one, logger: testLogger),
                    PostgresSnapshotStore(database: two, logger: testLogger),
                ]
                var events: [UserEvent] = []
                let users = (0..<6).map { "user-\($0)" }
                for user in users {
                    for version in Int64(1)...20 {
                        events.append(
                            UserEvent(
                                kind: version == 1 ? .created : .updated, userID: user, name: "v\(version)",
                                email: "\(user)@example.com", eventID: "\(user)-\(version)", version: version,
                                occurredAt: Date()))
                    }
                    // Some users end deleted: a late update must not bring them back.
                    if user.hasSuffix("0") || user.hasSuffix("3") {
                        events.append(
                            UserEvent(kind: .deleted, userID: user, eventID: "\(user)-21", version: 21, occurredAt: Date()))
                    }
                }
                // Every event delivered twice, in any order, to either instance.
                let deliveries = (events + events).shuffled()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, event) in deliveries.enumerated() {
                        group.addTask { _ = try await stores[index % 2].apply(event) }
                    }
                    try await group.waitForAll()
                }
                for user in users {
                    let snapshot = try #require(try await stores[0].snapshot(userID: user))
                    let deleted = user.hasSuffix("0") || user.hasSuffix("3")
                    #expect(snapshot.deleted == deleted)
                    #expect(snapshot.version == (deleted ? 21 : 20))
                    #expect(deleted ? snapshot.name == nil : snapshot.name == "v20")
                }
            }
        }
    }
}

/// Two user stores ("instances") on one fresh PostgreSQL database, each with its own pool.
func withTwoUserStores(_ body: (PostgresUserStore, PostgresUserStore) async throws -> Void) async throws {
    let url = try await TestPostgres.shared().freshDatabase("users")
    try await withPostgresDatabase(url, name: "users", migrations: PostgresUserStore.migrations) { one in
        try await withPostgresDatabase(url, name: "users", migrations: PostgresUserStore.migrations) { two in
            try await body(
                PostgresUserStore(database: one, logger: testLogger),
                PostgresUserStore(database: two, logger: testLogger))
        }
    }
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What `body` returned or threw.
func outcome<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do {
        return .success(try await body())
    } catch {
        return .failure(error)
    }
}

/// A logger that only prints warnings and errors.
let testLogger: Logger = {
    var logger = Logger(label: "ScaledStoreTests")
    logger.logLevel = .warning
    return logger
}()
