import EventCodec
import Foundation
@testable import Messaging
import Metrics
import MetricsTestKit
import Synchronization
import Testing

@testable import Delivery

/// The delivery loop against stand-ins for the consumer and the publisher: what is acked, retried and moved, in which
/// order, and what is counted. No broker.
struct DeliveryLoopTests {
    private struct Failure: Error, CustomStringConvertible {
        var description: String { "the handler failed" }
    }

    /// How often the handler ran, per message id.
    private final class Calls: Sendable {
        private let counts = Mutex<[String: Int]>([:])

        /// Counts a call and returns its number (1-based).
        func count(_ delivery: Delivery) -> Int {
            counts.withLock { counts in
                let id = delivery.properties.messageID ?? ""
                counts[id, default: 0] += 1
                return counts[id] ?? 0
            }
        }

        func of(_ id: String) -> Int { counts.withLock { $0[id] ?? 0 } }
    }

    private let queue = "queue_test"

    /// Runs a loop over `deliveries` until every one was handled; returns the journal and the metrics it recorded.
    private func run(
        _ deliveries: [Delivery], maxAttempts: Int = 5, publishFailures: Int = 0,
        publishRefusal: any Error = ScriptedPublisher.Refused(), concurrency: Int = 4, quorum: Bool = false,
        frameMax: Int = AMQPLimits.frameMax, handler: @escaping DeliveryLoop.Handler
    ) async throws -> (Journal, TestMetrics) {
        let journal = Journal()
        let metrics = TestMetrics()
        let loop = withMetricsFactory(metrics) {
            DeliveryLoop(
                queue: queue, source: ScriptedSource(journal, deliveries: deliveries),
                publisher: ScriptedPublisher(
                    journal, failures: publishFailures, refusal: publishRefusal, frameMax: frameMax),
                concurrency: concurrency,
                policy: DeliveryPolicy(maxAttempts: maxAttempts, brokerCountsDeliveries: quorum), logger: quietLogger,
                handler: handler)
        }
        try await loop.run()
        return (journal, metrics)
    }

    private func counter(_ metrics: TestMetrics, _ label: String, _ dimensions: [(String, String)]) -> Int64? {
        try? metrics.expectCounter(label, dimensions).totalValue
    }

    @Test func aHandlerThatReturnsIsAckedAndNothingIsPublished() async throws {
        let (journal, metrics) = try await run([delivery(id: "a"), delivery(id: "b")]) { _ in }
        #expect(journal.all.count == 2)
        #expect(Set(journal.all) == [.acked("a"), .acked("b")])
        #expect(counter(metrics, "events_consumed_total", [("queue", queue)]) == 2)
        #expect(metrics.counters(label: "events_dead_lettered_total").isEmpty)
    }

    @Test func anInvalidMessageIsDeadLetteredAtOnceWithTheHeaders() async throws {
        let calls = Calls()
        let before = Date()
        let original = delivery(id: "bad", body: "not json", headers: ["traceparent": "00-abc-def-01"])
        let (journal, metrics) = try await run([original]) { delivery in
            _ = calls.count(delivery)
            throw InvalidMessage("body is not JSON", code: "invalid_json")
        }
        #expect(calls.of("bad") == 1, "no retries")
        #expect(journal.all == [.published(queue: "queue_test.dead"), .acked("bad")])
        let moved = try #require(journal.published.first)
        #expect(moved.body == original.body)
        let headers = moved.properties.headers
        #expect(headers["x-error"] == "body is not JSON")
        #expect(headers["x-original-queue"] == queue)
        #expect(headers["x-attempts"] == "1")
        #expect(headers["traceparent"] == "00-abc-def-01", "the original headers travel along")
        let failedAt = try #require(headers["x-failed-at"].flatMap(Timestamp.parse))
        #expect(failedAt.timeIntervalSince(before) > -1 && failedAt.timeIntervalSinceNow < 1)
        #expect(moved.properties.messageID == "bad")
        #expect(counter(metrics, "events_dead_lettered_total", [("queue", queue), ("reason", "invalid_json")]) == 1)
        #expect(counter(metrics, "events_consumed_total", [("queue", queue)]) == 1)
    }

    @Test func otherErrorsAreRetriedUpToMaxAttemptsThenDeadLettered() async throws {
        let calls = Calls()
        let (journal, metrics) = try await run([delivery(id: "poison")], maxAttempts: 3) { delivery in
            _ = calls.count(delivery)
            throw Failure()
        }
        #expect(calls.of("poison") == 3)
        #expect(journal.all == [.published(queue: "queue_test.dead"), .acked("poison")])
        let headers = try #require(journal.published.first).properties.headers
        #expect(headers["x-attempts"] == "3")
        #expect(headers["x-error"] == "the handler failed")
        #expect(counter(metrics, "events_dead_lettered_total", [("queue", queue), ("reason", "max_attempts")]) == 1)
        #expect(counter(metrics, "events_consumed_total", [("queue", queue)]) == 1, "a retry is not a new delivery")
    }

    @Test func aHandlerThatSucceedsOnARetryIsAcked() async throws {
        let calls = Calls()
        let (journal, metrics) = try await run([delivery(id: "flaky")], maxAttempts: 3) { delivery in
            if calls.count(delivery) == 1 { throw Failure() }
        }
        #expect(calls.of("flaky") == 2)
        #expect(journal.all == [.acked("flaky")])
        #expect(metrics.counters(label: "events_dead_lettered_total").isEmpty)
    }

    @Test func aFailedMoveIsRetriedAndTheOriginalIsAckedOnlyAfterTheConfirm() async throws {
        let (journal, metrics) = try await run([delivery(id: "bad")], publishFailures: 2) { _ in
            throw InvalidMessage("no", code: "invalid_event")
        }
        #expect(journal.all == [.publishFailed, .publishFailed, .published(queue: "queue_test.dead"), .acked("bad")])
        #expect(counter(metrics, "events_dead_lettered_total", [("queue", queue), ("reason", "invalid_event")]) == 1)
    }

    @Test func eachReasonCodeIsCountedInItsOwnSeries() async throws {
        let deliveries = ["j1", "j2", "e1", "p1"].map { delivery(id: $0) }
        let (_, metrics) = try await run(deliveries, maxAttempts: 1) { delivery in
            switch delivery.properties.messageID?.first {
            case "j": throw InvalidMessage("json", code: "invalid_json")
            case "e": throw InvalidMessage("event", code: "invalid_event")
            default: throw Failure()
            }
        }
        #expect(counter(metrics, "events_dead_lettered_total", [("queue", queue), ("reason", "invalid_json")]) == 2)
        #expect(counter(metrics, "events_dead_lettered_total", [("queue", queue), ("reason", "invalid_event")]) == 1)
        #expect(counter(metrics, "events_dead_lettered_total", [("queue", queue), ("reason", "max_attempts")]) == 1)
        #expect(metrics.counters(label: "events_dead_lettered_total").count == 3)
        #expect(counter(metrics, "events_consumed_total", [("queue", queue)]) == 4)
    }

    @Test func noMoreThanTheConcurrencyAreHandledAtOnce() async throws {
        let inFlight = Mutex((now: 0, most: 0))
        let deliveries = (0..<20).map { delivery(id: "m\($0)") }
        let (journal, _) = try await run(deliveries, concurrency: 3) { _ in
            inFlight.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
            for _ in 0..<20 { await Task.yield() }
            inFlight.withLock { $0.now -= 1 }
        }
        let most = inFlight.withLock { $0.most }
        #expect(most <= 3 && most >= 1)
        #expect(journal.all.count == 20)
    }

    // MARK: The bound across restarts and instances

    @Test func aRedeliveryIsRepublishedWithItsCountAndNotHandledNow() async throws {
        let calls = Calls()
        let original = delivery(id: "r", body: #"{"a":1}"#, headers: ["traceparent": "t"], redelivered: true)
        let (journal, metrics) = try await run([original]) { _ = calls.count($0) }
        #expect(calls.of("r") == 0, "the copy is handled when it comes back")
        #expect(journal.all == [.published(queue: queue), .acked("r")], "the copy is confirmed before the ack")
        let copy = try #require(journal.published.first)
        #expect(copy.body == original.body)
        #expect(copy.properties.headers == ["traceparent": "t", "x-attempts": "1"])
        #expect(copy.properties.messageID == "r")
        #expect(metrics.counters(label: "events_dead_lettered_total").isEmpty)
    }

    @Test func aMessageThatKeepsKillingItsConsumerIsDeadLetteredAtTheBoundWithoutRunningTheHandler() async throws {
        let calls = Calls()
        let crashing = delivery(id: "k", headers: ["x-attempts": "4"], redelivered: true)
        let (journal, metrics) = try await run([crashing], maxAttempts: 5) { _ = calls.count($0) }
        #expect(calls.of("k") == 0)
        #expect(journal.all == [.published(queue: "queue_test.dead"), .acked("k")])
        let headers = try #require(journal.published.first).properties.headers
        #expect(headers["x-attempts"] == "5")
        #expect(headers["x-error"]?.contains("without being settled") == true)
        #expect(counter(metrics, "events_dead_lettered_total", [("queue", queue), ("reason", "max_attempts")]) == 1)
    }

    @Test func attemptsCarriedInTheMessageCountTowardsTheBound() async throws {
        let calls = Calls()
        let (journal, _) = try await run([delivery(id: "c", headers: ["x-attempts": "3"])], maxAttempts: 5) {
            _ = calls.count($0)
            throw Failure()
        }
        #expect(calls.of("c") == 2, "attempts 4 and 5")
        #expect(journal.published.first?.properties.headers["x-attempts"] == "5")
    }

    @Test func onAQuorumQueueTheBrokersCountIsUsedAndNotCarriedToTheDeadLetter() async throws {
        let calls = Calls()
        let (journal, _) = try await run(
            [delivery(id: "q", headers: ["x-delivery-count": "2"], redelivered: true)], maxAttempts: 3, quorum: true
        ) {
            _ = calls.count($0)
            throw Failure()
        }
        #expect(calls.of("q") == 1)
        let headers = try #require(journal.published.first).properties.headers
        #expect(headers["x-attempts"] == "3")
        #expect(headers["x-delivery-count"] == nil)
    }

    @Test func onAClassicQueueAPublishersDeliveryCountIsIgnored() async throws {
        let calls = Calls()
        let (journal, _) = try await run(
            [delivery(id: "p", headers: ["x-delivery-count": "0"], redelivered: true)], maxAttempts: 3
        ) { _ = calls.count($0) }
        #expect(calls.of("p") == 0, "the redelivery is counted and requeued, not handled as a first attempt")
        #expect(journal.published.first?.properties.headers["x-attempts"] == "1")
    }

    // MARK: Republishing what was received

    /// Received headers larger, re-encoded, than the agreed frame: a float rendered as a longer string, or invalid
    /// UTF-8 repaired into three bytes a byte.
    private static let grownHeaders = ["x-grown": String(repeating: "\u{FFFD}", count: 1_500), "traceparent": "t"]

    @Test(.timeLimit(.minutes(1)))
    func aRecountIsFittedToTheAgreedFrameSize() async throws {
        let original = delivery(id: "g", headers: Self.grownHeaders, redelivered: true)
        let (journal, _) = try await run([original], frameMax: 4_096) { _ in }
        #expect(journal.all == [.published(queue: queue), .acked("g")])
        let headers = try #require(journal.published.first).properties.headers
        #expect(headers == ["traceparent": "t", "x-attempts": "1"], "the header that no longer fits is dropped")
    }

    @Test(.timeLimit(.minutes(1)))
    func aRecountThatCannotBeEncodedIsDeadLetteredNotRetried() async throws {
        // Refused at the agreed frame size, then fitted to the smallest a broker may agree to and refused again.
        let (journal, metrics) = try await run(
            [delivery(id: "n", redelivered: true)], publishFailures: 2,
            publishRefusal: MessagingError(.unencodable, "cannot publish")
        ) { _ in }
        #expect(journal.all == [.publishFailed, .publishFailed, .published(queue: "queue_test.dead"), .acked("n")])
        let headers = try #require(journal.published.first).properties.headers
        #expect(headers["x-error"]?.contains("could not be requeued") == true)
        #expect(counter(metrics, "events_dead_lettered_total", [("queue", queue), ("reason", "unencodable")]) == 1)
    }

    @Test(.timeLimit(.minutes(1)))
    func aRecountRefusedAtAStaleFrameSizeIsFittedToTheSmallestAndRequeued() async throws {
        // The frame agreed when the copy was fitted is no longer the connection's (a reconnect to another node).
        let (journal, _) = try await run(
            [delivery(id: "s", redelivered: true)], publishFailures: 1,
            publishRefusal: MessagingError(.unencodable, "cannot publish")
        ) { _ in }
        #expect(journal.all == [.publishFailed, .published(queue: queue), .acked("s")])
    }

    @Test(.timeLimit(.minutes(1)))
    func aDeadLetterCopyIsFittedToTheAgreedFrameSize() async throws {
        let (journal, _) = try await run([delivery(id: "d", headers: Self.grownHeaders)], frameMax: 4_096) { _ in
            throw InvalidMessage("no", code: "invalid_event")
        }
        #expect(journal.all == [.published(queue: "queue_test.dead"), .acked("d")])
        let headers = try #require(journal.published.first).properties.headers
        #expect(headers["x-grown"] == nil)
        #expect(headers["x-error"]?.contains("dropped what AMQP cannot carry") == true)
    }

    @Test func aMoveToAQueueThatDisappearedDeclaresItAgain() async throws {
        let (journal, _) = try await run(
            [delivery(id: "u")], publishFailures: 1, publishRefusal: MessagingError(.unroutable, "NO_ROUTE")
        ) { _ in throw InvalidMessage("no", code: "invalid_event") }
        #expect(
            journal.all == [
                .publishFailed, .declared(["queue_test.dead"]), .published(queue: "queue_test.dead"), .acked("u"),
            ])
    }

    // MARK: Batches

    /// Runs a loop with a batch handler over `deliveries`, handed over as one batch; returns the journal and the source.
    private func runBatched(
        _ deliveries: [Delivery], maxAttempts: Int = 5, concurrency: Int = 8, maxBatch: Int = 8,
        handler: @escaping DeliveryLoop.Handler, batchHandler: @escaping DeliveryLoop.BatchHandler
    ) async throws -> (Journal, ScriptedSource) {
        let journal = Journal()
        let source = ScriptedSource(journal, deliveries: deliveries, batched: true)
        let loop = DeliveryLoop(
            queue: queue, source: source, publisher: ScriptedPublisher(journal), concurrency: concurrency,
            policy: DeliveryPolicy(maxAttempts: maxAttempts), maxBatch: maxBatch, logger: quietLogger,
            handler: handler, batchHandler: batchHandler)
        try await loop.run()
        return (journal, source)
    }

    @Test(arguments: [2, 5, 8])
    func aBatchHandledTogetherIsAckedWithOneMultipleAck(size: Int) async throws {
        let deliveries = (0..<size).map { delivery(id: "m\($0)") }
        let batches = Mutex<[[String]]>([])
        let (journal, source) = try await runBatched(deliveries) { _ in
            Issue.record("a batch that succeeds is not handled again one by one")
        } batchHandler: { batch in
            batches.withLock { $0.append(batch.map { $0.properties.messageID ?? "" }) }
        }
        #expect(batches.withLock { $0 } == [deliveries.map { $0.properties.messageID ?? "" }])
        #expect(source.ledger.sent.map(\.tag) == [deliveries.last?.deliveryTag])
        #expect(source.ledger.sent.map(\.multiple) == [true])
        #expect(Set(journal.all) == Set(deliveries.map { .acked($0.properties.messageID ?? "") }))
    }

    @Test func aPoisonMessageInABatchIsRetriedAndDeadLetteredAloneWithItsOwnCount() async throws {
        let deliveries = ["a", "poison", "b", "c"].map { delivery(id: $0) }
        let calls = Calls()
        let (journal, _) = try await runBatched(deliveries, maxAttempts: 3) { delivery in
            _ = calls.count(delivery)
            if delivery.properties.messageID == "poison" { throw Failure() }
        } batchHandler: { batch in
            if batch.contains(where: { $0.properties.messageID == "poison" }) { throw Failure() }
        }
        #expect(calls.of("poison") == 3, "the failed batch is no attempt: three of its own")
        for id in ["a", "b", "c"] { #expect(calls.of(id) == 1) }
        #expect(journal.published.map(\.queue) == ["queue_test.dead"])
        #expect(journal.published.first?.properties.headers["x-attempts"] == "3")
        #expect(Set(journal.all) == [.acked("a"), .acked("b"), .acked("c"), .acked("poison"), .published(queue: "queue_test.dead")])
        let all = journal.all
        #expect(
            all.firstIndex(of: .published(queue: "queue_test.dead"))! < all.firstIndex(of: .acked("poison"))!,
            "the move is confirmed before the ack")
    }

    @Test func aBatchWithARedeliveryIsHandledOneByOne() async throws {
        let deliveries = [delivery(id: "a"), delivery(id: "r", redelivered: true), delivery(id: "b")]
        let batchCalls = Mutex(0)
        let (journal, _) = try await runBatched(deliveries) { _ in } batchHandler: { _ in
            batchCalls.withLock { $0 += 1 }
        }
        #expect(batchCalls.withLock { $0 } == 0, "a redelivery must be recounted first, alone")
        #expect(journal.published.map(\.queue) == [queue])
        #expect(journal.published.first?.properties.headers["x-attempts"] == "1")
        #expect(Set(journal.all.filter { if case .acked = $0 { true } else { false } }) == [.acked("a"), .acked("r"), .acked("b")])
    }

    @Test func aMultipleAckNeverCoversADeliveryThatHasNotFinished() async throws {
        // Two batches of two; the first is held until the second has finished and been acked.
        let deliveries = (1...4).map { delivery(id: "d\($0)") }
        let release = AsyncStream.makeStream(of: Void.self)
        let secondDone = AsyncStream.makeStream(of: Void.self)
        let journal = Journal()
        let source = ScriptedSource(journal, deliveries: deliveries, batched: true)
        let loop = DeliveryLoop(
            queue: queue, source: source, publisher: ScriptedPublisher(journal), concurrency: 4,
            policy: DeliveryPolicy(maxAttempts: 5), maxBatch: 2, logger: quietLogger, handler: { _ in }
        ) { batch in
            if batch.first?.properties.messageID == "d1" {
                for await _ in release.stream { break }
            } else {
                secondDone.continuation.yield()
            }
        }
        let running = Task { try await loop.run() }
        for await _ in secondDone.stream { break }
        try await eventually("the second batch is acked") { source.ledger.sent.count == 2 }
        #expect(Set(journal.all) == [.acked("d3"), .acked("d4")], "d1 and d2 are unfinished: not covered")
        #expect(source.ledger.sent.allSatisfy { !$0.multiple })
        release.continuation.yield()
        try await running.value
        #expect(source.ledger.sent.last.map { [$0.tag, $0.multiple ? 1 : 0] } == [deliveries[1].deliveryTag, 1])
        #expect(Set(journal.all) == Set(deliveries.map { .acked($0.properties.messageID ?? "") }))
    }

    @Test func aDeliveryLeftUnackedAtShutdownIsNeverCoveredByALaterMultipleAck() async throws {
        let tracker = AckTracker()
        let deliveries = (1...5).map { delivery(id: "t\($0)") }
        tracker.taken(deliveries)
        // The first ends without an ack (shutdown while held); the rest finish in two batches.
        let acks1 = tracker.finished(Array(deliveries[1...2]))
        let acks2 = tracker.finished(Array(deliveries[3...4]))
        #expect((acks1 + acks2).allSatisfy { !$0.multiple })
        #expect((acks1 + acks2).map(\.delivery.deliveryTag) == deliveries[1...4].map(\.deliveryTag))
        // Another connection's tags are tracked apart.
        let other = Delivery(
            body: [], properties: MessageProperties(messageID: "g2"), redelivered: false, queue: queue, deliveryTag: 1,
            generation: 2)
        tracker.taken([other])
        #expect(tracker.finished([other]).map(\.multiple) == [false])
    }

    /// Deliveries finished concurrently, in chunks: the acks reach the connection in an order the broker accepts,
    /// with no tag acked after a `multiple` ack covered it (which the broker answers with 406 "unknown delivery tag",
    /// closing the channel), and every delivery acked in the end.
    @Test func acksDecidedConcurrentlyReachTheBrokerInAnOrderItAccepts() async {
        for _ in 0..<20 {
            let tracker = AckTracker()
            let deliveries = (1...400).map { delivery(id: "c\($0)") }
            tracker.taken(deliveries)
            var chunks: [[Delivery]] = []
            var rest = deliveries.shuffled()[...]
            while !rest.isEmpty {
                let size = Int.random(in: 1...6)
                chunks.append(Array(rest.prefix(size)))
                rest = rest.dropFirst(size)
            }
            let sent = SentAcks()
            await withTaskGroup(of: Void.self) { group in
                for chunk in chunks {
                    group.addTask {
                        tracker.settle(chunk) { delivery, multiple in
                            // Sending takes time (the mailbox's lock, a wake-up): a window for another task's ack.
                            if Int.random(in: 0..<8) == 0 { usleep(20) }
                            sent.list.withLock { $0.append((delivery.deliveryTag, multiple)) }
                        }
                    }
                }
            }
            // The broker's side: an ack names an outstanding tag; `multiple` settles every outstanding tag up to it.
            var outstanding = Set(deliveries.map(\.deliveryTag))
            for (tag, multiple) in sent.list.withLock({ $0 }) {
                #expect(outstanding.contains(tag), "ack of \(tag) (multiple: \(multiple)) after it was settled")
                if multiple { outstanding = outstanding.filter { $0 > tag } } else { outstanding.remove(tag) }
            }
            #expect(outstanding.isEmpty, "never acked: \(outstanding.sorted().prefix(5))")
        }
    }

    /// The acks a test's concurrent tasks sent, in the order they were sent.
    private final class SentAcks: Sendable {
        let list = Mutex<[(tag: UInt64, multiple: Bool)]>([])
    }

    // MARK: Faults of a dependency

    /// A source the test feeds while the loop runs.
    private final class ManualSource: DeliverySource {
        let batches: AsyncStream<[Delivery]>
        private let stream: AsyncStream<[Delivery]>.Continuation
        let ledger: AckLedger

        init(_ journal: Journal) {
            ledger = AckLedger(journal)
            (batches, stream) = AsyncStream.makeStream(of: [Delivery].self)
        }

        /// Hands `deliveries` over as one batch.
        func yield(_ deliveries: Delivery...) {
            ledger.handedOver(deliveries)
            stream.yield(deliveries)
        }

        func finish() { stream.finish() }

        func ack(_ delivery: Delivery, multiple: Bool) {
            ledger.ack(delivery, multiple: multiple)
        }
    }

    @Test func aFaultOfADependencyPausesDeliveriesWithoutCountingThemAndResumes() async throws {
        let journal = Journal()
        let source = ManualSource(journal)
        let down = Mutex(true)
        let ranWhileDown = Mutex<[String]>([])
        let calls = Calls()
        // Probes every 10 to 40 ms; a waiting delivery tries by itself only after 5 s.
        let backoff = Backoff(initial: .milliseconds(10), maximum: .seconds(5))
        let loop = DeliveryLoop(
            queue: queue, source: source, publisher: ScriptedPublisher(journal), concurrency: 4,
            policy: DeliveryPolicy(maxAttempts: 1, backoff: backoff), logger: quietLogger
        ) { delivery in
            _ = calls.count(delivery)
            if down.withLock({ $0 }) {
                ranWhileDown.withLock { $0.append(delivery.properties.messageID ?? "") }
                throw DependencyUnavailable("database", reason: "disk full")
            }
        }
        let running = Task { try await loop.run() }
        source.yield(delivery(id: "first"))
        try await eventually("the loop reports the database down") { loop.unavailableDependency != nil }
        #expect(loop.unavailableDependency == DependencyUnavailable("database", reason: "disk full"))
        source.yield(delivery(id: "second"))
        let probes = calls.of("first")
        try await eventually("the held delivery is retried") { calls.of("first") >= probes + 3 }
        down.withLock { $0 = false }
        try await eventually("both are acked") { Set(journal.all) == [.acked("first"), .acked("second")] }
        source.finish()
        try await running.value
        #expect(calls.of("first") >= 4, "held and retried although the bound is 1 attempt")
        #expect(calls.of("second") == 1, "waited for the database instead of failing on it")
        #expect(Set(ranWhileDown.withLock { $0 }) == ["first"])
        #expect(loop.unavailableDependency == nil)
        #expect(journal.published.isEmpty, "nothing dead-lettered")
    }

    @Test func aWaitingDeliveryTriesItselfWhenTheHeldOneLeftForAnotherReason() async throws {
        let journal = Journal()
        let source = ManualSource(journal)
        let calls = Calls()
        let loop = DeliveryLoop(
            queue: queue, source: source, publisher: ScriptedPublisher(journal), concurrency: 4,
            policy: DeliveryPolicy(maxAttempts: 1, backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(50))),
            logger: quietLogger
        ) { delivery in
            let call = calls.count(delivery)
            guard delivery.properties.messageID == "held" else { return }
            // Held for the database first, then refused for itself: it leaves, dead-lettered.
            if call == 1 { throw DependencyUnavailable("database", reason: "busy") }
            throw Failure()
        }
        let running = Task { try await loop.run() }
        source.yield(delivery(id: "held"))
        try await eventually("the loop reports the database down") { loop.unavailableDependency != nil }
        source.yield(delivery(id: "waiting"))
        try await eventually("the waiting one went through") { journal.all.contains(.acked("waiting")) }
        source.finish()
        try await running.value
        #expect(journal.all.contains(.published(queue: "queue_test.dead")))
        #expect(loop.unavailableDependency == nil)
    }
}

/// Polls `condition` until it holds, failing after 30 seconds (the machine running the suite may be very busy).
private func eventually(_ what: String, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting: \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}
