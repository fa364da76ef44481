import Common
import Foundation
import SQLiteStorage
import Testing

@testable import UserService

/// The outbox on a real SQLite file, without a broker: what the relay reads, marks and is woken by.
struct SQLiteOutboxTests {
    @Test func aCommitThatAppendedEventsWakesTheRelay() async throws {
        try await withUserStore { store, _ in
            _ = try await store.create(name: "Ann", email: "ann@example.com", traceparent: "t", idempotency: nil)
            // The signal is sent once the transaction committed, before the caller resumed: it is waiting now,
            // and the row it announces is visible to the relay's reads.
            #expect(await yields(store.outbox.appended))
            #expect(try await store.outbox.pending(limit: 10).count == 1)

            _ = try await store.create(name: "Ben", email: "ben@example.com", traceparent: "t", idempotency: nil)
            #expect(await yields(store.outbox.appended))
        }
    }

    @Test func pendingRowsComeInCommitOrderUntilMarkedSent() async throws {
        try await withUserStore { store, path in
            for index in 0..<4 {
                _ = try await store.create(
                    name: "User \(index)", email: "u\(index)@example.com", traceparent: "t", idempotency: nil)
            }
            let pending = try await store.outbox.pending(limit: 10)
            let seqs = pending.map(\.seq)
            try await store.outbox.markSent([seqs[0], seqs[2]])
            // Exactly the rows named: the one between them stays pending.
            #expect(try await store.outbox.pending(limit: 10) == [pending[1], pending[3]])
            try await store.outbox.markSent(seqs)
            #expect(try await store.outbox.backlog() == 0)
            // Sent rows are kept for inspection, with the time they were marked.
            #expect(try scalar(path, "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL") == 4)
        }
    }

    @Test func markingRowsSentPrunesSentRowsBeyondTheKeptNumber() async throws {
        try await withUserStore(keptSentRows: 2) { store, path in
            for index in 0..<10 {
                _ = try await store.create(
                    name: "User \(index)", email: "u\(index)@example.com", traceparent: "t", idempotency: nil)
            }
            let seqs = try await store.outbox.pending(limit: 10).map(\.seq)
            // Unsent rows are never pruned, however old.
            try await store.outbox.markSent(Array(seqs[6...9]))
            #expect(try scalar(path, "SELECT count(*) FROM outbox") == 10)
            try await store.outbox.markSent(Array(seqs[0...5]))
            #expect(try scalar(path, "SELECT count(*) FROM outbox") == 10)

            // Sent rows more than 2 before the newly marked ones go.
            _ = try await store.create(name: "Last", email: "last@example.com", traceparent: "t", idempotency: nil)
            let last = try #require(try await store.outbox.pending(limit: 10).first?.seq)
            try await store.outbox.markSent([last])
            #expect(try scalar(path, "SELECT min(seq) FROM outbox") == Int(last - 2))
            #expect(try scalar(path, "SELECT count(*) FROM outbox") == 3)
            #expect(try await store.outbox.backlog() == 0)
        }
    }
}
