/// One publish call (one ``Publisher/publish(_:)``) as the confirms settle it: done when every message is settled,
/// failed if any of them was nacked or returned (the first failure is the one reported).
struct PublishBatch: Sendable {
    /// The mailbox's request id of the call.
    let id: UInt64
    /// Messages not yet acked or nacked.
    private(set) var unsettled: Int
    /// The first failure seen (a nack, a return).
    private(set) var failure: MessagingError?

    init(id: UInt64, messageCount: Int) {
        precondition(messageCount > 0, "a publish call has at least one message")
        self.id = id
        unsettled = messageCount
    }

    /// Remembers `error` unless an earlier failure is already recorded.
    mutating func record(_ error: MessagingError) {
        if failure == nil { failure = error }
    }

    /// One message was acked (`failure` nil) or nacked. Returns the call's outcome once every message is settled.
    mutating func settleOne(failure: MessagingError?) -> PublishOutcome? {
        precondition(unsettled > 0, "batch \(id) settled more often than it has messages")
        if let failure { record(failure) }
        unsettled -= 1
        return unsettled == 0 ? PublishOutcome(requestID: id, failure: self.failure) : nil
    }
}

/// How a publish call ended: confirmed (`failure` nil) or failed.
struct PublishOutcome: Sendable {
    var requestID: UInt64
    var failure: MessagingError?
}

/// Where a confirm is matched to its publish: the sequence numbers of one channel in confirm mode (they start at 1,
/// one per `basic.publish`) and the publish call each belongs to.
///
/// The broker confirms in its own time, with `multiple` covering every earlier number; a `basic.return` comes before
/// the ack of the message it returns. After a reconnect the numbering starts again at 1 (``reset()``).
struct ConfirmTracker: Sendable {
    private struct Unconfirmed {
        var requestID: UInt64
        var queue: String
        /// When it went on the wire, if the clock had started.
        var sentAt: ContinuousClock.Instant?
        var returned = false
    }

    private var nextSequence: UInt64 = 1
    /// No sequence number below this is unconfirmed.
    private var oldest: UInt64 = 1
    private var unconfirmed: [UInt64: Unconfirmed] = [:]
    private var batches: [UInt64: PublishBatch] = [:]
    /// Per queue, when the broker nacked a message to it and has acked none to it since: the first and the latest
    /// such nack (only nacks settled with a time are dated).
    private var nackedSince: [String: (first: ContinuousClock.Instant, latest: ContinuousClock.Instant)] = [:]

    /// Messages sent and not yet confirmed: what fills the confirm window.
    var count: Int { unconfirmed.count }
    var isEmpty: Bool { unconfirmed.isEmpty }

    /// Whether publish call `requestID` is tracked (it sent a message and has not ended).
    func isTracking(_ requestID: UInt64) -> Bool { batches[requestID] != nil }

    /// Starts tracking a publish call; call before its first message is sent.
    mutating func track(_ batch: PublishBatch) {
        precondition(batches[batch.id] == nil, "publish call \(batch.id) is tracked already")
        batches[batch.id] = batch
    }

    /// When the oldest unconfirmed message went on the wire (nil if none, or if it was sent without a time).
    /// Sequence numbers follow the sends, so no unconfirmed message was sent earlier.
    var oldestSentAt: ContinuousClock.Instant? { unconfirmed[oldest]?.sentAt }

    /// A message of call `requestID` for `queue` went on the wire at `time`; returns its sequence number.
    @discardableResult
    mutating func sent(requestID: UInt64, queue: String, at time: ContinuousClock.Instant? = nil) -> UInt64 {
        let sequence = nextSequence
        unconfirmed[sequence] = Unconfirmed(requestID: requestID, queue: queue, sentAt: time)
        nextSequence += 1
        return sequence
    }

    /// Applies `basic.ack` (`failure` nil) or `basic.nack`, which arrived at `time`; with `multiple`, to every number
    /// up to `tag`. Returns the calls that are now settled. Numbers that are not outstanding are ignored.
    mutating func settle(
        upTo tag: UInt64, multiple: Bool, failure: MessagingError?, at time: ContinuousClock.Instant? = nil
    ) -> [PublishOutcome] {
        var outcomes: [PublishOutcome] = []
        func settle(_ sequence: UInt64) {
            guard let message = unconfirmed.removeValue(forKey: sequence) else { return }
            if failure == nil {
                nackedSince[message.queue] = nil
            } else if let time {
                nackedSince[message.queue] = (nackedSince[message.queue]?.first ?? time, time)
            }
            guard var batch = batches[message.requestID] else { return }
            if let outcome = batch.settleOne(failure: failure) {
                batches[message.requestID] = nil
                outcomes.append(outcome)
            } else {
                batches[message.requestID] = batch
            }
        }
        if multiple {
            let last = min(tag, nextSequence - 1)
            if oldest <= last {
                for sequence in oldest...last { settle(sequence) }
            }
        } else {
            settle(tag)
        }
        while oldest < nextSequence && unconfirmed[oldest] == nil { oldest += 1 }
        return outcomes
    }

    /// A queue whose every message on this channel has been nacked, from a first nack to the latest one at least
    /// `span` apart, with no ack for that queue between them; nil if there is none.
    func queueNackedThroughout(atLeast span: Duration) -> String? {
        nackedSince.first { $0.value.latest - $0.value.first >= span }?.key
    }

    /// Applies a `basic.return`. The broker handles publishes in order and returns a message before confirming it,
    /// so it belongs to the oldest unconfirmed, not yet returned message with that routing key; its call fails with
    /// `error` once settled. Returns false if no message matches.
    mutating func markReturned(routingKey: String, error: MessagingError) -> Bool {
        var sequence = oldest
        while sequence < nextSequence {
            if let message = unconfirmed[sequence], !message.returned, message.queue == routingKey {
                unconfirmed[sequence]?.returned = true
                batches[message.requestID]?.record(error)
                return true
            }
            sequence += 1
        }
        return false
    }

    /// Stops tracking call `requestID`, which failed while sending: the confirms of its sent messages still fill the
    /// window until they arrive, and are then ignored.
    mutating func abandon(_ requestID: UInt64) {
        batches[requestID] = nil
    }

    /// The channel is gone: forgets every number (the next channel counts from 1 again) and returns the calls that
    /// were still waiting for confirms, in ascending order, to fail them.
    mutating func reset() -> [UInt64] {
        defer { self = ConfirmTracker() }
        return batches.keys.sorted()
    }
}
