import EventCodec
import Foundation
import Messaging
import SQLiteStorage
import Synchronization
import Testing
import TestSupport

@testable import UserService

/// The outbox relay on a real SQLite store against a stand-in broker that confirms some messages of a call and nacks
/// others: what reaches `queue_dispatch` first, and what happens to a row AMQP cannot carry. No broker.
@Suite(.timeLimit(.minutes(1)))
struct OutboxRelayTests {
    /// A broker whose calls fail now and then: a failed call had some of its messages confirmed (they are in the
    /// queue) and others nacked, as when a quorum queue's leader moves under a pipelined batch.
    final class FlakyBroker: OutboxRelay.Destination {
        private struct State {
            var random: UInt64
            var queue: [OutboundMessage] = []
            var calls = 0
        }
        private let state: Mutex<State>
        let frameMax = AMQPLimits.frameMax
        var isConnected: Bool { true }

        init(seed: UInt64) { state = Mutex(State(random: seed)) }

        /// Every message confirmed, in arrival order (duplicates included).
        var queue: [OutboundMessage] { state.withLock { $0.queue } }

        func publish(_ messages: [OutboundMessage]) async throws {
            let failed = state.withLock { state -> Bool in
                state.calls += 1
                let fails = state.calls % 2 == 1  // every other call is partly nacked
                for message in messages {
                    // xorshift: the same seed gives the same run
                    state.random ^= state.random << 13
                    state.random ^= state.random >> 7
                    state.random ^= state.random << 17
                    if !fails || state.random % 2 == 0 { state.queue.append(message) }
                }
                return fails
            }
            if failed { throw MessagingError(.nacked, "the broker nacked some messages of the call") }
        }
    }

    /// Runs a relay over `store`'s outbox until `done` holds for the broker.
    private func relay(
        _ store: SQLiteUserStore, to broker: some OutboxRelay.Destination, until done: @escaping @Sendable () async throws -> Bool
    ) async throws {
        let relay = OutboxRelay(outbox: store.outbox, publisher: broker, logger: quietLogger)
        let running = Task { try await relay.run() }
        defer { running.cancel() }
        try await eventually(timeout: .seconds(45), "the relay publishes the outbox") { try await done() }
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func aUsersEventsReachTheQueueForTheFirstTimeInVersionOrderWhateverIsNacked(seed: UInt64) async throws {
        try await withUserStore { store, _ in
            // Every user's three events wait in the outbox together, as after a broker outage.
            var users: [String] = []
            for index in 0..<20 {
                guard case .created(let user) = try await store.create(
                    name: "U\(index)", email: "u\(index)@example.com", traceparent: "t", idempotency: nil)
                else { throw UserStoreError.notFound }
                users.append(user.id)
            }
            for round in 1...2 {
                for (index, id) in users.enumerated() {
                    _ = try await store.update(
                        id: id, patch: UserPatch(name: "U\(index) r\(round)"), condition: .any, traceparent: "t")
                }
            }
            let broker = FlakyBroker(seed: seed)
            try await relay(store, to: broker) { try await store.outbox.backlog() == 0 }

            var newest: [String: Int64] = [:]
            var firstArrivals = 0
            var seen: Set<String> = []
            for message in broker.queue {
                let event = try UserEvent.decode(body: message.body)
                guard seen.insert(event.eventID).inserted else { continue }  // a duplicate: consumers absorb it
                firstArrivals += 1
                let before = newest[event.userID] ?? 0
                #expect(event.version > before, "v\(event.version) of \(event.userID) arrived after v\(before)")
                newest[event.userID] = max(before, event.version)
            }
            #expect(firstArrivals == 60)
        }
    }

    @Test func aRowAMQPCannotCarryIsSetAsideAndTheRowsAfterItGoOn() async throws {
        try await withUserStore { store, path in
            _ = try await store.create(name: "Before", email: "before@example.com", traceparent: "t", idempotency: nil)
            // A row no API call can make (a manual insert, a restore): its event id is longer than a message_id.
            let longID = String(repeating: "e", count: 300)
            let body = #"{"event":"user_created","user_id":"u-x","name":"X","email":"x@example.com","event_id":"\#(longID)","version":1}"#
            try SQLiteConnection(path: path).run(
                """
                INSERT INTO outbox(event_id, event_type, user_id, body, traceparent, created_at)
                VALUES (?, 'user_created', 'u-x', ?, NULL, '2026-12-08T00:00:00.000Z')
                """, longID, Array(body.utf8))
            for index in 0..<5 {
                _ = try await store.create(
                    name: "After \(index)", email: "after\(index)@example.com", traceparent: "t", idempotency: nil)
            }
            let broker = FlakyBroker(seed: 0)  // seed 0 keeps xorshift at 0: every message is kept, odd calls still nacked
            try await relay(store, to: broker) {
                let published = Set(broker.queue.compactMap(\.properties.messageID)).count
                let backlog = try await store.outbox.backlog()
                return published == 6 && backlog == 0
            }

            #expect(!broker.queue.contains { $0.properties.messageID == longID })
            #expect(try await store.outbox.setAsideCount() == 1)
            let kept = try SQLiteConnection(path: path).queryFirst(
                "SELECT set_aside_reason AS reason FROM outbox WHERE event_id = ?", longID)
            let reason = try #require(kept?.string("reason"))
            #expect(reason.contains("message_id is 300 bytes"), "\(reason)")
        }
    }
}
