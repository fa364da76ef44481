import BrokerTestSupport
import Common
import Foundation
import Messaging
import Synchronization
import Testing
import TestSupport

@testable import UserService

/// What the outbox relay reads on the SQLite store, one change at a time: each committed row once. Rows published
/// and not yet marked sent are not read again on every commit, and a drain does not read a second time to find
/// nothing.
@Suite(.timeLimit(.minutes(3)))
struct RelayReadTests {
    @Test func eachCommittedRowIsReadOnce() async throws {
        let broker = try await TestBroker.shared()
        let brokerURL = try await broker.makeVirtualHost("relay-reads")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("relay-reads-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteUserStore(path: directory.appendingPathComponent("users.sqlite").path, logger: testLogger)
        let outbox = ReadCountingOutbox(store.outbox)
        let publisher = Publisher(
            configuration: try BrokerConfiguration(url: brokerURL), declaring: [QueueName.dispatch], logger: testLogger)
        let relay = OutboxRelay(outbox: outbox, publisher: publisher, logger: testLogger)
        let running = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await publisher.run() }
                group.addTask { try? await relay.run() }
            }
        }
        defer { running.cancel() }
        try await eventually(timeout: .seconds(60), "the publisher connects") { publisher.isConnected }

        // One change at a time, each published before the next: the relay's reads return each row once.
        let count = 25
        for index in 0..<count {
            _ = try await store.create(
                name: "User \(index)", email: "u\(index)@example.com", traceparent: "t", idempotency: nil)
            try await eventually(timeout: .seconds(20), "row \(index) is read") { outbox.rowsRead.count > index }
        }
        try await eventually(timeout: .seconds(20), "everything is marked sent") {
            try await store.outbox.backlog() == 0
        }
        let reads = outbox.rowsRead
        #expect(reads.count == count, "rows read: \(reads)")
        #expect(Set(reads).count == count)
        // One read per wake-up (a commit), never one more to find the outbox empty.
        #expect(outbox.calls <= count + 1, "reads: \(outbox.calls)")
        let published = try await broker.messageCount(queue: QueueName.dispatch, virtualHostURL: brokerURL)
        #expect(published == count)
    }
}

/// The SQLite outbox, with a record of what the relay's reads returned. Every call goes to the real outbox.
final class ReadCountingOutbox: Outbox {
    private let outbox: any Outbox
    private let record = Mutex<(calls: Int, rows: [Int64])>((0, []))

    init(_ outbox: any Outbox) {
        self.outbox = outbox
    }

    /// Positions of the rows `pending` returned, in order, repeats included.
    var rowsRead: [Int64] { record.withLock { $0.rows } }
    /// How many times `pending` was called.
    var calls: Int { record.withLock { $0.calls } }

    var positionsFollowCommitOrder: Bool { outbox.positionsFollowCommitOrder }

    func whileRelaying(_ relay: @escaping @Sendable (AsyncStream<Void>) async -> Void) async throws {
        try await outbox.whileRelaying(relay)
    }

    func pending(after position: Int64?, limit: Int) async throws -> [OutboxEntry] {
        let entries = try await outbox.pending(after: position, limit: limit)
        record.withLock {
            $0.calls += 1
            $0.rows += entries.map(\.seq)
        }
        return entries
    }

    func markSent(_ positions: [Int64]) async throws {
        try await outbox.markSent(positions)
    }

    func setAside(_ position: Int64, reason: String) async throws {
        try await outbox.setAside(position, reason: reason)
    }

    func backlog() async throws -> Int {
        try await outbox.backlog()
    }

    func setAsideCount() async throws -> Int {
        try await outbox.setAsideCount()
    }
}
