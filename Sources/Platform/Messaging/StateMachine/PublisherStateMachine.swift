import Logging

/// The publisher's half of a ``ConnectionStateMachine``: publish calls wait in order, are sent one message at a time
/// while the confirm window has room, and end when the broker has confirmed every message (``ConfirmTracker``).
///
/// A call is cancellable until its first message is sent; from then on it runs to its end. A lost connection fails
/// the calls that had started (the broker may have some of their messages, so the caller retries) and keeps the
/// waiting ones for the next connection. On shutdown no new call starts, the one being sent is finished, and the
/// connection closes once every confirm arrived (or the drain timer fires).
///
/// A call with a message that AMQP cannot carry (``AMQPLimits``: short strings over 255 bytes, properties over the
/// frame size) is refused in ``commandReceived(_:)`` with `.unencodable`, before any of its messages goes on the wire;
/// other calls are not affected. While the broker blocks the connection (`connection.blocked`) nothing is sent, so
/// the connection thread never sits in a send the broker does not read; sending resumes on `connection.unblocked`.
///
/// The confirm deadline: when the oldest unconfirmed message has waited longer than `confirmTimeout` (a quorum queue
/// whose leader moved can hold a publish unconfirmed for minutes), ``timePassed(now:)`` gives the connection up. It
/// is then lost like any other: the calls that had started fail with `.connectionLost` (their callers retry: the
/// broker may have some of their messages, which is at-least-once), the waiting ones go out on the next connection,
/// to the next node. Time is an input: the driver reports its clock, and a send is dated by the last report. While
/// the broker blocks the connection the deadline is suspended, and it counts again from `connection.unblocked`.
///
/// The same timeout bounds a channel that answers for a queue only with nacks: when the broker has nacked every
/// publish to one queue on the channel for `confirmTimeout` (a nack for it arrives that long after the first one
/// since its last ack), the connection is given up the same way. RabbitMQ 3.10 leaves a channel in that state after
/// a quorum queue's leader node stops while the channel first publishes to it (its enqueuer registration times out,
/// and each later publish to that queue on that channel is nacked without trying again, while other queues on the
/// same channel are confirmed), and a new channel on the same node publishes to it at once.
struct PublisherStateMachine: ConnectionRole {
    /// What publishing callers ask.
    enum Command: Sendable {
        /// Publish `messages` in order; answer request `requestID` when all are confirmed.
        case publish(requestID: UInt64, messages: [OutboundMessage])
    }

    private struct Call {
        let requestID: UInt64
        let messages: [OutboundMessage]
        /// How many of `messages` went on the wire.
        var sent = 0
    }

    static var name: String { "publisher" }

    /// Most messages sent and not yet confirmed.
    let confirmWindow: Int
    /// How long the oldest unconfirmed message may wait for its confirm before the connection is given up; nil for
    /// no bound.
    let confirmTimeout: Duration?
    /// The driver's clock as last reported to ``timePassed(now:)``; sends are dated with it.
    private var clock: ContinuousClock.Instant?
    /// When the broker last unblocked the connection: the deadline counts from no earlier than this.
    private var unblockedAt: ContinuousClock.Instant?
    /// Calls that have not sent anything yet.
    private var waiting = FIFO<Call>()
    /// The call being sent: some of its messages may wait for room in the window.
    private var sending: Call?
    /// A ``ConnectionAction/sendPublish(_:)`` was asked for and its outcome not yet reported.
    private var sendOutstanding = false
    private var confirms = ConfirmTracker()
    private var channelOpen = false
    /// Shutdown was asked: no new call starts.
    private var stopping = false
    /// The broker blocked the connection: nothing is sent until it unblocks it.
    private var blocked = false

    /// A publisher role sending at most `confirmWindow` messages ahead of their confirms, and giving the connection
    /// up when one waits longer than `confirmTimeout` (nil or not positive: no bound).
    init(confirmWindow: Int, confirmTimeout: Duration? = nil) {
        precondition(confirmWindow > 0, "the confirm window holds at least one message")
        self.confirmWindow = confirmWindow
        self.confirmTimeout = confirmTimeout.flatMap { $0 > .zero ? $0 : nil }
    }

    var setupSteps: [SetupStep] { [.selectConfirms] }

    var isDrained: Bool { sending == nil && confirms.isEmpty }

    mutating func channelOpened(generation: UInt64, consumerTag: String?) -> [ConnectionAction] {
        channelOpen = true
        return sendNext()
    }

    mutating func commandReceived(_ command: Command) -> [ConnectionAction] {
        switch command {
        case .publish(let requestID, let messages):
            precondition(!messages.isEmpty, "a publish call has at least one message")
            guard !stopping else { return [.failPublish(requestID: requestID, Self.shuttingDown)] }
            for (index, message) in messages.enumerated() {
                guard var error = message.unencodableError(frameMax: AMQPLimits.frameMax) else { continue }
                if messages.count > 1 { error.detail = "message \(index + 1) of \(messages.count): \(error.detail)" }
                return [.failPublish(requestID: requestID, error)]
            }
            waiting.append(Call(requestID: requestID, messages: messages))
            return sendNext()
        }
    }

    mutating func cancelAsked(requestID: UInt64) -> [ConnectionAction] {
        guard waiting.remove(where: { $0.requestID == requestID }) != nil else { return [] }
        return [.cancelPublish(requestID: requestID)]
    }

    mutating func publishSent() -> [ConnectionAction] {
        guard sendOutstanding, var call = sending else { preconditionFailure("publishSent without a send") }
        sendOutstanding = false
        if call.sent == 0 { confirms.track(PublishBatch(id: call.requestID, messageCount: call.messages.count)) }
        confirms.sent(requestID: call.requestID, queue: call.messages[call.sent].queue, at: clock)
        call.sent += 1
        sending = call.sent == call.messages.count ? nil : call
        return sendNext()
    }

    mutating func publishRefused(_ error: MessagingError) -> [ConnectionAction] {
        guard sendOutstanding, let call = sending else { preconditionFailure("publishRefused without a send") }
        sendOutstanding = false
        // The rest of the call is not sent; messages already sent still get their confirms, which are ignored.
        sending = nil
        confirms.abandon(call.requestID)
        return [.failPublish(requestID: call.requestID, error)] + sendNext()
    }

    mutating func frameRead(_ frame: IncomingFrame) throws(MessagingError) -> [ConnectionAction] {
        switch frame {
        case .ack(let tag, let multiple):
            return settled(confirms.settle(upTo: tag, multiple: multiple, failure: nil)) + sendNext()
        case .nack(let tag, let multiple):
            let nacked = MessagingError(.nacked, "the broker nacked the message")
            return settled(confirms.settle(upTo: tag, multiple: multiple, failure: nacked, at: clock)) + sendNext()
        case .returned(let routingKey, let replyCode, let replyText):
            let error = MessagingError(
                .unroutable, "no queue for routing key '\(routingKey)' (\(replyCode) \(replyText))")
            guard confirms.markReturned(routingKey: routingKey, error: error) else {
                return [.log(.warning, "basic.return for '\(routingKey)' matches no unconfirmed publish")]
            }
            return []
        case .deliver:
            throw MessagingError(.protocolError, "basic.deliver on a publisher connection")
        case .cancelledByBroker, .cancelOk:
            throw MessagingError(.protocolError, "basic.cancel on a publisher connection")
        case .close, .other, .blocked, .unblocked:
            preconditionFailure("\(frame) is handled by the connection")
        }
    }

    mutating func flowControl(blocked: Bool) -> [ConnectionAction] {
        self.blocked = blocked
        if !blocked { unblockedAt = clock }
        return sendNext()
    }

    /// When the oldest unconfirmed message passes its confirm deadline, if there is one to watch.
    var nextDeadline: ContinuousClock.Instant? {
        guard let confirmTimeout, channelOpen, !blocked, var since = confirms.oldestSentAt else { return nil }
        if let unblockedAt, unblockedAt > since { since = unblockedAt }
        return since + confirmTimeout
    }

    mutating func timePassed(now: ContinuousClock.Instant) -> MessagingError? {
        clock = now
        if let confirmTimeout, let queue = confirms.queueNackedThroughout(atLeast: confirmTimeout) {
            return MessagingError(
                .timeout,
                "the broker has nacked every publish to '\(queue)' on this channel for \(confirmTimeout);"
                    + " giving the connection up")
        }
        guard let deadline = nextDeadline, let confirmTimeout, deadline <= now else { return nil }
        return MessagingError(
            .timeout,
            "no confirm for a publish within \(confirmTimeout) (the broker or its queue leader is not answering);"
                + " giving the connection up")
    }

    mutating func channelLost(_ error: MessagingError) -> [ConnectionAction] {
        channelOpen = false
        blocked = false
        unblockedAt = nil
        return failStarted(MessagingError(.connectionLost, "connection lost: \(error)"))
    }

    mutating func shutdownAsked() -> [ConnectionAction] {
        stopping = true
        return failWaiting() + sendNext()
    }

    mutating func drainTimedOut() -> [ConnectionAction] { [] }

    mutating func stop() -> [ConnectionAction] {
        channelOpen = false
        stopping = true
        let started = failStarted(MessagingError(.closed, "the publisher stopped before the broker confirmed"))
        return started + failWaiting()
    }

    // MARK: - Helpers

    private static var shuttingDown: MessagingError { MessagingError(.closed, "the publisher is shutting down") }

    /// The next message to send, if the channel is open, no send is outstanding and the window has room.
    private mutating func sendNext() -> [ConnectionAction] {
        guard channelOpen, !blocked, !sendOutstanding, confirms.count < confirmWindow else { return [] }
        if sending == nil {
            guard !stopping, let next = waiting.popFirst() else { return [] }
            sending = next
        }
        guard let call = sending else { return [] }
        sendOutstanding = true
        return [.sendPublish(call.messages[call.sent])]
    }

    private func settled(_ outcomes: [PublishOutcome]) -> [ConnectionAction] {
        outcomes.map { outcome in
            if let failure = outcome.failure {
                .failPublish(requestID: outcome.requestID, failure)
            } else {
                .completePublish(requestID: outcome.requestID)
            }
        }
    }

    /// Fails the calls that sent something, or were about to, with `error`.
    private mutating func failStarted(_ error: MessagingError) -> [ConnectionAction] {
        var failed = confirms.reset()
        if let sending, !failed.contains(sending.requestID) { failed.append(sending.requestID) }
        sending = nil
        sendOutstanding = false
        return failed.map { .failPublish(requestID: $0, error) }
    }

    private mutating func failWaiting() -> [ConnectionAction] {
        waiting.removeAll().map { .failPublish(requestID: $0.requestID, Self.shuttingDown) }
    }
}
