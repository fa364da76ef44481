import Testing

@testable import Messaging

/// Matching confirms to publishes, as rabbitmq/amqp091-go's confirms_test.go checks its tracker: acks one by one and
/// with `multiple`, nacks inside a window, a return before its ack, and numbering again from 1 after a reconnect.
struct ConfirmTrackerTests {
    private let nacked = MessagingError(.nacked, "nacked")
    private let unroutable = MessagingError(.unroutable, "returned")

    /// Sends `count` messages of call `id` (all to `queue`) and returns their sequence numbers.
    @discardableResult
    private func send(_ tracker: inout ConfirmTracker, call id: UInt64, count: Int, to queue: String = "q") -> [UInt64]
    {
        tracker.track(PublishBatch(id: id, messageCount: count))
        return (0..<count).map { _ in tracker.sent(requestID: id, queue: queue) }
    }

    @Test func sequenceNumbersStartAtOneAndFollowTheSends() {
        var tracker = ConfirmTracker()
        #expect(send(&tracker, call: 1, count: 2) == [1, 2])
        #expect(send(&tracker, call: 2, count: 1) == [3])
        #expect(tracker.count == 3)
        #expect(tracker.isTracking(1) && tracker.isTracking(2))
    }

    @Test func aCallIsConfirmedOnceEveryMessageIsAcked() {
        var tracker = ConfirmTracker()
        send(&tracker, call: 1, count: 3)
        #expect(tracker.settle(upTo: 1, multiple: false, failure: nil).summary == [])
        #expect(tracker.settle(upTo: 3, multiple: false, failure: nil).summary == [])
        #expect(tracker.count == 1)
        #expect(tracker.settle(upTo: 2, multiple: false, failure: nil).summary == ["1"])
        #expect(tracker.isEmpty)
        #expect(!tracker.isTracking(1))
    }

    @Test func multipleAckSettlesEveryNumberUpToTheTag() {
        var tracker = ConfirmTracker()
        send(&tracker, call: 1, count: 2)  // 1, 2
        send(&tracker, call: 2, count: 1)  // 3
        send(&tracker, call: 3, count: 2)  // 4, 5
        #expect(tracker.settle(upTo: 4, multiple: true, failure: nil).summary == ["1", "2"])
        #expect(tracker.count == 1)
        #expect(tracker.settle(upTo: 5, multiple: true, failure: nil).summary == ["3"])
        #expect(tracker.isEmpty)
    }

    @Test func multipleAckAfterSingleAcksSkipsWhatIsSettled() {
        var tracker = ConfirmTracker()
        send(&tracker, call: 1, count: 1)  // 1
        send(&tracker, call: 2, count: 1)  // 2
        send(&tracker, call: 3, count: 1)  // 3
        #expect(tracker.settle(upTo: 2, multiple: false, failure: nil).summary == ["2"])
        #expect(tracker.settle(upTo: 3, multiple: true, failure: nil).summary == ["1", "3"])
        #expect(tracker.isEmpty)
    }

    @Test func nackInsideAWindowFailsOnlyTheCallsItCovers() {
        var tracker = ConfirmTracker()
        send(&tracker, call: 1, count: 1)  // 1
        send(&tracker, call: 2, count: 2)  // 2, 3
        send(&tracker, call: 3, count: 1)  // 4
        #expect(tracker.settle(upTo: 3, multiple: true, failure: nacked).summary == ["1: nacked", "2: nacked"])
        #expect(tracker.settle(upTo: 4, multiple: false, failure: nil).summary == ["3"])
    }

    @Test func oneNackedMessageFailsItsWholeCall() {
        var tracker = ConfirmTracker()
        send(&tracker, call: 1, count: 3)
        #expect(tracker.settle(upTo: 2, multiple: false, failure: nacked).summary == [])
        // The later acks do not undo the failure.
        #expect(tracker.settle(upTo: 3, multiple: true, failure: nil).summary == ["1: nacked"])
    }

    @Test func aReturnBeforeItsAckFailsTheCallAsUnroutable() {
        var tracker = ConfirmTracker()
        tracker.track(PublishBatch(id: 1, messageCount: 2))
        tracker.sent(requestID: 1, queue: "orders")  // 1
        tracker.sent(requestID: 1, queue: "missing")  // 2
        send(&tracker, call: 2, count: 1, to: "missing")  // 3
        let returned = tracker.markReturned(routingKey: "missing", error: unroutable)
        #expect(returned)
        // The broker acks a returned message too; the call fails once all its messages are settled.
        #expect(tracker.settle(upTo: 2, multiple: true, failure: nil).summary == ["1: unroutable"])
        #expect(tracker.settle(upTo: 3, multiple: false, failure: nil).summary == ["2"])
    }

    @Test func returnsMatchTheOldestUnreturnedMessageWithTheirRoutingKey() {
        var tracker = ConfirmTracker()
        send(&tracker, call: 1, count: 1, to: "missing")  // 1
        send(&tracker, call: 2, count: 1, to: "missing")  // 2
        send(&tracker, call: 3, count: 1, to: "missing")  // 3
        let first = tracker.markReturned(routingKey: "missing", error: unroutable)
        let second = tracker.markReturned(routingKey: "missing", error: unroutable)
        #expect(first && second)
        #expect(
            tracker.settle(upTo: 3, multiple: true, failure: nil).summary == ["1: unroutable", "2: unroutable", "3"])
    }

    @Test func aReturnThatMatchesNothingIsReported() {
        var tracker = ConfirmTracker()
        let onEmpty = tracker.markReturned(routingKey: "missing", error: unroutable)
        send(&tracker, call: 1, count: 1, to: "orders")
        let onOtherQueue = tracker.markReturned(routingKey: "missing", error: unroutable)
        #expect(!onEmpty && !onOtherQueue)
        #expect(tracker.settle(upTo: 1, multiple: false, failure: nil).summary == ["1"])
    }

    @Test func unknownTagsAreIgnored() {
        var tracker = ConfirmTracker()
        send(&tracker, call: 1, count: 1)
        #expect(tracker.settle(upTo: 7, multiple: false, failure: nil).summary == [])
        #expect(tracker.settle(upTo: 0, multiple: true, failure: nil).summary == [])
        #expect(tracker.count == 1)
        // A multiple ack beyond the last number sent covers only what was sent.
        #expect(tracker.settle(upTo: 9, multiple: true, failure: nil).summary == ["1"])
        let next = tracker.sent(requestID: 9, queue: "q")
        #expect(next == 2)
    }

    @Test func anAbandonedCallFillsTheWindowUntilItsConfirmsArriveAndIsNotSettledAgain() {
        var tracker = ConfirmTracker()
        tracker.track(PublishBatch(id: 1, messageCount: 3))
        tracker.sent(requestID: 1, queue: "q")
        tracker.abandon(1)  // its second message could not be encoded; the call has failed already
        #expect(tracker.count == 1)
        #expect(!tracker.isTracking(1))
        #expect(tracker.settle(upTo: 1, multiple: false, failure: nil).summary == [])
        #expect(tracker.isEmpty)
    }

    @Test func resetAfterReconnectReturnsTheWaitingCallsAndNumbersFromOneAgain() {
        var tracker = ConfirmTracker()
        send(&tracker, call: 4, count: 2)
        send(&tracker, call: 2, count: 1)
        #expect(tracker.settle(upTo: 3, multiple: false, failure: nil).summary == ["2"])
        tracker.track(PublishBatch(id: 5, messageCount: 2))  // tracked, nothing sent yet
        #expect(tracker.reset() == [4, 5])
        #expect(tracker.isEmpty && !tracker.isTracking(4))
        // The new channel numbers from 1; an ack for 1 now means the new message.
        #expect(send(&tracker, call: 6, count: 1) == [1])
        #expect(tracker.settle(upTo: 1, multiple: false, failure: nil).summary == ["6"])
    }
}

struct PublishBatchTests {
    @Test func settlesWhenEveryMessageIsSettled() {
        var batch = PublishBatch(id: 3, messageCount: 2)
        #expect(batch.settleOne(failure: nil) == nil)
        #expect(batch.unsettled == 1)
        let outcome = batch.settleOne(failure: nil)
        #expect(outcome?.requestID == 3)
        #expect(outcome != nil && outcome?.failure == nil)
    }

    @Test func theFirstFailureIsTheOneReported() {
        var batch = PublishBatch(id: 1, messageCount: 3)
        batch.record(MessagingError(.unroutable, "first"))
        #expect(batch.settleOne(failure: MessagingError(.nacked, "second")) == nil)
        #expect(batch.settleOne(failure: nil) == nil)
        let outcome = batch.settleOne(failure: nil)
        #expect(outcome?.failure?.code == .unroutable)
        #expect(outcome?.failure?.detail == "first")
    }
}
