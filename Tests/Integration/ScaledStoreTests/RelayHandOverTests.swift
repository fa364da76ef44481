import BrokerTestSupport
import Common
import EventCodec
import DatabaseTestSupport
import Foundation
import Logging
import Messaging
import PostgresStorage
import StoreConformance
import Testing
import TestSupport

@testable import UserService

/// Several user-service instances on one PostgreSQL database: one relay publishes at a time, and when it stops
/// another takes over within the documented time, skipping nothing.
@Suite(.timeLimit(.minutes(3)))
struct RelayHandOverTests {
    /// The hand-over time docs/OPERATIONS.md documents: the others try the lock every `PostgresOutbox.lockRetryInterval`
    /// (1 s); allow for a loaded machine.
    static let handOverLimit = Duration.seconds(5)

    @Test func exactlyOneRelayPublishesAndAnotherTakesOverWhenItStops() async throws {
        let broker = try await TestBroker.shared()
        let brokerURL = try await broker.makeVirtualHost("relay")
        let databaseURL = try await TestPostgres.shared().freshDatabase("relay")

        let first = try RelayInstance(databaseURL: databaseURL, brokerURL: brokerURL)
        defer { first.stop() }
        // Start-up (pool, migrations, the lock, the broker) on a busy machine: the hand-over below is what is timed.
        try await eventually(timeout: .seconds(60), "the first instance becomes the relay") { first.relay.isRelaying }
        let second = try RelayInstance(databaseURL: databaseURL, brokerURL: brokerURL)
        defer { second.stop() }
        // The second waits: it never relays while the first holds the turn.
        for _ in 0..<10 {
            #expect(!second.relay.isRelaying)
            try await Task.sleep(for: .milliseconds(200))
        }

        // Changes through both instances, published by the first's relay.
        var users: [String] = []
        for index in 0..<10 {
            let store = index.isMultiple(of: 2) ? first.store : second.store
            users.append(try await Self.createAndUpdate(store, index: index))
        }
        try await eventually("the first relay published everything") { try await first.store.outbox.backlog() == 0 }

        // The holder stops; changes go on meanwhile; the second takes over within the documented time.
        let stopped = ContinuousClock.now
        first.stop()
        await first.stopped()
        for index in 10..<20 { users.append(try await Self.createAndUpdate(second.store, index: index)) }
        try await eventually(timeout: Self.handOverLimit, "the second instance takes over the relay") {
            second.relay.isRelaying
        }
        let handOver = stopped.duration(to: .now)
        #expect(handOver < Self.handOverLimit)
        try await eventually(timeout: .seconds(20), "the second relay published everything") {
            try await second.store.outbox.backlog() == 0
        }

        // Everything committed reached queue_dispatch; each user's versions in order (a duplicate only repeats an
        // older version, which the consumers' version check absorbs).
        let count = try #require(try await broker.messageCount(queue: QueueName.dispatch, virtualHostURL: brokerURL))
        let messages = try await takeMessages(count, from: QueueName.dispatch, brokerURL: brokerURL)
        #expect(messages.count == count)
        let events = try messages.map { try UserEvent.decode(body: $0.body) }
        var published: [String: [Int64]] = [:]
        for event in events { published[event.userID, default: []].append(event.version) }
        for user in users {
            let versions = published[user] ?? []
            var firstSeen: [Int64] = []
            for version in versions where !firstSeen.contains(version) { firstSeen.append(version) }
            #expect(firstSeen == [1, 2, 3], "user \(user): \(versions)")
        }
        #expect(Set(events.map(\.userID)) == Set(users))
    }

    /// Creates a user and changes it twice (versions 1-3); returns its id.
    static func createAndUpdate(_ store: PostgresUserStore, index: Int) async throws -> String {
        let outcome = try await store.create(
            name: "User \(index)", email: "u\(index)@example.com", traceparent: "t", idempotency: nil)
        guard case .created(let user) = outcome else { throw TestError("not created: \(outcome)") }
        _ = try await store.update(id: user.id, patch: UserPatch(name: "User \(index)b"), condition: .any, traceparent: "t")
        _ = try await store.update(id: user.id, patch: UserPatch(name: "User \(index)c"), condition: .any, traceparent: "t")
        return user.id
    }
}

/// One user-service instance without its HTTP server: a pool on the database, a publisher, an outbox relay, running
/// until stopped.
final class RelayInstance: Sendable {
    let database: PostgresPool
    let store: PostgresUserStore
    let relay: OutboxRelay
    private let task: Task<Void, Never>

    init(databaseURL: String, brokerURL: String) throws {
        let database = PostgresPool(
            endpoint: try postgresEndpoint(databaseURL), name: "users", migrations: PostgresUserStore.migrations,
            logger: testLogger)
        let store = PostgresUserStore(database: database, logger: testLogger)
        let publisher = Publisher(
            configuration: try BrokerConfiguration(url: brokerURL), declaring: [QueueName.dispatch], logger: testLogger)
        let relay = OutboxRelay(outbox: store.outbox, publisher: publisher, logger: testLogger)
        self.database = database
        self.store = store
        self.relay = relay
        task = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await database.run() }
                group.addTask { try? await publisher.run() }
                group.addTask { try? await relay.run() }
            }
        }
    }

    /// Stops everything at once, as a killed process would (the relay does not finish its work).
    func stop() {
        task.cancel()
    }

    /// Returns once everything stopped.
    func stopped() async {
        await task.value
    }
}
