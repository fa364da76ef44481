import EventCodec
import Delivery
import Foundation
import Logging
import Metrics
import MetricsTestKit
import SQLiteStorage
import TestSupport
import Testing

@testable import Messaging
@testable import OrderService

/// The order service's handler against a real snapshot store in a temporary directory; no broker.
struct SnapshotApplierTests {
    private struct Fixture {
        let applier: SnapshotApplier
        let store: any SnapshotStore
        let metrics: TestMetrics
        let path: String

        init() throws {
            path = try temporaryDirectory("applier") + "/orders.sqlite"
            var logger = Logger(label: "SnapshotApplierTests")
            logger.logLevel = .warning
            let store = try SQLiteSnapshotStore(path: path, logger: logger)
            let metrics = TestMetrics()
            applier = withMetricsFactory(metrics) { SnapshotApplier(store: store, logger: logger) }
            self.store = store
            self.metrics = metrics
        }

        func counted(_ result: String) -> Int64 {
            (try? metrics.expectCounter("snapshots_applied_total", [("result", result)]).totalValue) ?? 0
        }

        var lagRecordings: Int {
            (try? metrics.expectTimer("event_lag_seconds").values.count) ?? 0
        }
    }

    private func delivery(_ body: [UInt8], messageID: String? = nil) -> Delivery {
        Delivery(
            body: body, properties: MessageProperties(messageID: messageID), redelivered: false, queue: "queue_order",
            deliveryTag: 1, generation: 1)
    }

    private func event(_ kind: UserEvent.Kind, version: Int64, occurredAt: Date? = Date()) -> UserEvent {
        UserEvent(
            kind: kind, userID: "u1", name: kind == .deleted ? nil : "v\(version)",
            email: kind == .deleted ? nil : "v\(version)@example.com", eventID: "e\(version)", version: version,
            occurredAt: occurredAt)
    }

    /// The `InvalidMessage` that handling `body` throws; nil when it throws something else or nothing.
    private func invalidMessage(_ applier: SnapshotApplier, _ body: String) async -> InvalidMessage? {
        do {
            try await applier.handle(delivery(Array(body.utf8)))
            return nil
        } catch {
            return error as? InvalidMessage
        }
    }

    @Test func bodiesThatAreNotEventsAreInvalidMessagesWithTheirCode() async throws {
        let fixture = try Fixture()
        let notJSON = await invalidMessage(fixture.applier, "not json")
        #expect(notJSON?.code == "invalid_json")
        let noUser = await invalidMessage(fixture.applier, #"{"event":"user_created"}"#)
        #expect(noUser?.code == "invalid_event")
        let unknownKind = await invalidMessage(fixture.applier, #"{"event":"order_placed","user_id":"u1"}"#)
        #expect(unknownKind?.code == "invalid_event")
        #expect(fixture.counted("applied") == 0 && fixture.counted("ignored") == 0)
    }

    @Test func newerVersionsAreAppliedAndDuplicatesOrOlderOnesIgnored() async throws {
        let fixture = try Fixture()
        for (version, applied, ignored) in [(Int64(1), 1, 0), (3, 2, 0), (3, 2, 1), (2, 2, 2)] {
            let kind: UserEvent.Kind = version == 1 ? .created : .updated
            try await fixture.applier.handle(delivery(event(kind, version: version).encodedBody()))
            #expect(fixture.counted("applied") == Int64(applied), "after version \(version)")
            #expect(fixture.counted("ignored") == Int64(ignored), "after version \(version)")
        }
        let snapshot = try #require(try await fixture.store.snapshot(userID: "u1"))
        #expect(snapshot.version == 3 && snapshot.name == "v3")
        #expect(fixture.lagRecordings == 2, "lag is recorded for applied events only")
    }

    @Test func aBatchIsAppliedTogetherAndCountedPerEvent() async throws {
        let fixture = try Fixture()
        let versions: [(UserEvent.Kind, Int64)] = [(.created, 1), (.updated, 3), (.updated, 2), (.updated, 3)]
        try await fixture.applier.handle(batch: versions.map { delivery(event($0.0, version: $0.1).encodedBody()) })
        #expect(fixture.counted("applied") == 2 && fixture.counted("ignored") == 2)
        #expect(try await fixture.store.snapshot(userID: "u1")?.version == 3)
    }

    @Test func aBatchWithABodyThatIsNotAnEventAppliesNothing() async throws {
        let fixture = try Fixture()
        await #expect(throws: InvalidMessage.self) {
            try await fixture.applier.handle(batch: [
                delivery(event(.created, version: 1).encodedBody()), delivery(Array("not json".utf8)),
            ])
        }
        #expect(try await fixture.store.snapshot(userID: "u1") == nil)
        #expect(fixture.counted("applied") == 0)
    }

    @Test func aDeleteLeavesATombstoneThatALateUpdateCannotUndo() async throws {
        let fixture = try Fixture()
        try await fixture.applier.handle(delivery(event(.created, version: 1).encodedBody()))
        try await fixture.applier.handle(delivery(event(.deleted, version: 2).encodedBody()))
        try await fixture.applier.handle(delivery(event(.updated, version: 2).encodedBody()))
        let snapshot = try #require(try await fixture.store.snapshot(userID: "u1"))
        #expect(snapshot.deleted && snapshot.version == 2)
        #expect(fixture.counted("ignored") == 1)
    }

    @Test func anEventWithoutATimeIsAppliedWithoutALag() async throws {
        let fixture = try Fixture()
        try await fixture.applier.handle(delivery(event(.created, version: 1, occurredAt: nil).encodedBody()))
        #expect(fixture.counted("applied") == 1)
        #expect(fixture.lagRecordings == 0)
    }

    @Test func aStoreErrorIsThrownAsItIsForTheLoopToRetry() async throws {
        let fixture = try Fixture()
        let admin = try SQLiteConnection(path: fixture.path)
        try admin.execute(
            """
            CREATE TRIGGER refuse BEFORE INSERT ON user_snapshots
            BEGIN SELECT RAISE(ABORT, 'refused row'); END;
            """)
        admin.close()
        var thrown: (any Error)?
        do {
            try await fixture.applier.handle(delivery(event(.created, version: 1).encodedBody()))
        } catch {
            thrown = error
        }
        let error = try #require(thrown)
        #expect(!(error is InvalidMessage), "retryable, not dead-lettered at once: \(error)")
        #expect("\(error)".contains("refused row"))
        #expect(fixture.counted("applied") == 0 && fixture.counted("ignored") == 0)
    }

    @Test func aFaultOfTheDatabaseIsADependencyFaultNotTheMessages() async throws {
        let fixture = try Fixture()
        let other = try SQLiteConnection(path: fixture.path)
        try other.execute("BEGIN EXCLUSIVE")
        defer {
            try? other.execute("ROLLBACK")
            other.close()
        }
        do {
            try await fixture.applier.handle(delivery(event(.created, version: 1).encodedBody()))
            Issue.record("applied through an exclusive lock")
        } catch let fault as DependencyUnavailable {
            #expect(fault.dependency == "database")
            #expect(fault.reason.contains("busy"), "\(fault.reason)")
        }
    }
}
