import Testing

@testable import Messaging

/// The publisher's confirm deadline, with the clock fed by hand: a publish whose confirm does not come within the
/// confirm timeout gives the connection up, as a lost socket would (started calls fail with `.connectionLost`, the
/// waiting ones go out on the next node's connection).
struct ConfirmDeadlineTests {
    private let start = ContinuousClock.now

    @Test func aConfirmThatDoesNotComeInTimeGivesTheConnectionUpForTheNextNode() {
        var machine = connectedPublisher(nodes: 3, window: 1, at: start)
        #expect(machine.commandReceived(publish(1, "a1")).summary == ["sendPublish(a1)"])
        #expect(machine.publishSent().summary == [])
        #expect(machine.commandReceived(publish(2, "b1")).summary == [], "the window of 1 is full")
        #expect(machine.nextDeadline == start + .seconds(5))
        #expect(machine.timePassed(now: start + .milliseconds(4_999)).summary == [])
        #expect(machine.isConnected)
        #expect(
            machine.timePassed(now: start + .seconds(5)).summary == [
                "abandonConnection(timeout, reconnecting)", "failPublish(1, connectionLost)",
                "connect(node 2: declare q, selectConfirms)",
            ])
        #expect(machine.nextDeadline == nil, "not connected")
        // The waiting call goes out on the next connection, whose sends are timed afresh.
        _ = machine.timePassed(now: start + .seconds(6))
        #expect(
            machine.connected(consumerTag: nil).summary == ["reportConnected(2, reconnect, node 2)", "sendPublish(b1)"])
        #expect(machine.publishSent().summary == [])
        #expect(machine.nextDeadline == start + .seconds(11))
        #expect(machine.frameRead(.ack(deliveryTag: 1, multiple: false)).summary == ["completePublish(2)"])
        #expect(machine.nextDeadline == nil, "nothing unconfirmed")
        #expect(machine.timePassed(now: start + .seconds(60)).summary == [])
        #expect(machine.isConnected)
    }

    @Test func onOneNodeTheConnectionBacksOffAndReconnectsToIt() {
        var machine = connectedPublisher(nodes: 1, at: start)
        _ = machine.commandReceived(publish(1, "a1", "a2"))
        _ = machine.publishSent()
        _ = machine.publishSent()
        #expect(
            machine.timePassed(now: start + .seconds(7)).summary == [
                "abandonConnection(timeout, reconnecting)", "failPublish(1, connectionLost)", "backOff(0.1 seconds)",
            ])
    }

    @Test func theDeadlineFollowsTheOldestUnconfirmedMessage() {
        var machine = connectedPublisher(nodes: 2, at: start)
        _ = machine.commandReceived(publish(1, "a1"))
        _ = machine.publishSent()
        _ = machine.timePassed(now: start + .seconds(3))
        _ = machine.commandReceived(publish(2, "b1"))
        _ = machine.publishSent()
        #expect(machine.nextDeadline == start + .seconds(5))
        // Confirms may come out of order: the deadline is the oldest unconfirmed one's.
        #expect(machine.frameRead(.ack(deliveryTag: 2, multiple: false)).summary == ["completePublish(2)"])
        #expect(machine.nextDeadline == start + .seconds(5))
        #expect(machine.frameRead(.ack(deliveryTag: 1, multiple: false)).summary == ["completePublish(1)"])
        #expect(machine.nextDeadline == nil)

        _ = machine.timePassed(now: start + .seconds(4))
        _ = machine.commandReceived(publish(3, "c1"))
        _ = machine.publishSent()
        _ = machine.timePassed(now: start + .seconds(6))
        _ = machine.commandReceived(publish(4, "d1"))
        _ = machine.publishSent()
        #expect(machine.frameRead(.ack(deliveryTag: 3, multiple: false)).summary == ["completePublish(3)"])
        #expect(machine.timePassed(now: start + .seconds(10)).summary == [], "d1 was sent at 6 s")
        #expect(machine.nextDeadline == start + .seconds(11))
        #expect(machine.timePassed(now: start + .seconds(11)).first?.summary == "abandonConnection(timeout, reconnecting)")
    }

    @Test func theConfirmsOfAFailedCallsSentMessagesStillCount() {
        var machine = connectedPublisher(nodes: 2, at: start)
        #expect(machine.commandReceived(publish(1, "a1", "a2")).summary == ["sendPublish(a1)"])
        #expect(machine.publishSent().summary == ["sendPublish(a2)"])
        // The second message cannot be sent: the call fails, and the first one is still unconfirmed on the channel.
        #expect(
            machine.publishRefused(MessagingError(.unencodable, "too large")).summary == [
                "failPublish(1, unencodable)"
            ])
        #expect(machine.nextDeadline == start + .seconds(5))
        #expect(
            machine.timePassed(now: start + .seconds(5)).first?.summary == "abandonConnection(timeout, reconnecting)")
    }

    @Test func whileTheBrokerBlocksTheConnectionTheDeadlineWaitsAndCountsAgainFromTheUnblock() {
        var machine = connectedPublisher(nodes: 2, at: start)
        _ = machine.commandReceived(publish(1, "a1"))
        _ = machine.publishSent()
        _ = machine.frameRead(.blocked(reason: "low on memory"))
        #expect(machine.nextDeadline == nil)
        #expect(machine.timePassed(now: start + .seconds(60)).summary == [])
        _ = machine.timePassed(now: start + .seconds(100))
        _ = machine.frameRead(.unblocked)
        #expect(machine.nextDeadline == start + .seconds(105))
        #expect(machine.timePassed(now: start + .seconds(104)).summary == [])
        #expect(machine.timePassed(now: start + .seconds(105)).first?.summary == "abandonConnection(timeout, reconnecting)")
    }

    /// RabbitMQ 3.10 can leave a channel nacking every publish to a quorum queue whose leader node stopped, while a
    /// new channel publishes at once: a channel whose publishes are all nacked for the confirm timeout is given up.
    @Test func aChannelThatNacksEveryPublishForTheConfirmTimeoutIsGivenUp() {
        var machine = connectedPublisher(nodes: 3, at: start)
        func publishNacked(_ requestID: UInt64, at seconds: Int, tag: UInt64? = nil) -> [String] {
            _ = machine.timePassed(now: start + .seconds(seconds))
            _ = machine.commandReceived(publish(requestID, "m\(requestID)"))
            _ = machine.publishSent()
            let nack = machine.frameRead(.nack(deliveryTag: tag ?? requestID, multiple: false))
            return nack.summary + machine.timePassed(now: start + .seconds(seconds)).summary
        }
        #expect(publishNacked(1, at: 0) == ["failPublish(1, nacked)"])
        #expect(publishNacked(2, at: 3) == ["failPublish(2, nacked)"])
        #expect(machine.timePassed(now: start + .seconds(60)).summary == [], "no nack since: nothing to give up")
        #expect(
            publishNacked(3, at: 61) == [
                "failPublish(3, nacked)", "abandonConnection(timeout, reconnecting)",
                "connect(node 2: declare q, selectConfirms)",
            ], "nacked since 0 s, with no ack between")
        // The next channel starts with a clean record (and numbers its publishes from 1).
        _ = machine.connected(consumerTag: nil)
        #expect(publishNacked(4, at: 62, tag: 1) == ["failPublish(4, nacked)"])
        #expect(machine.isConnected)
    }

    /// The stuck state is per queue: the router's forward of one delivery to two queues has one acked and the other
    /// nacked, every time.
    @Test func aQueueNackedThroughoutGivesTheConnectionUpWhileAnotherQueueIsAcked() {
        var machine = connectedPublisher(nodes: 3, at: start)
        func forward(_ requestID: UInt64, at seconds: Int) -> [String] {
            _ = machine.timePassed(now: start + .seconds(seconds))
            let messages = ["q", "r"].map { OutboundMessage(queue: $0, body: Array("m\(requestID)".utf8)) }
            _ = machine.commandReceived(.role(.publish(requestID: requestID, messages: messages)))
            _ = machine.publishSent()
            _ = machine.publishSent()
            let tag = requestID * 2
            let settled =
                machine.frameRead(.ack(deliveryTag: tag - 1, multiple: false)).summary
                + machine.frameRead(.nack(deliveryTag: tag, multiple: false)).summary
            return settled + machine.timePassed(now: start + .seconds(seconds)).summary
        }
        #expect(forward(1, at: 0) == ["failPublish(1, nacked)"])
        #expect(forward(2, at: 2) == ["failPublish(2, nacked)"])
        #expect(
            forward(3, at: 5) == [
                "failPublish(3, nacked)", "abandonConnection(timeout, reconnecting)",
                "connect(node 2: declare q, selectConfirms)",
            ], "r nacked from 0 s to 5 s; q's acks do not vouch for r")
    }

    @Test func anAckBetweenNacksShowsTheChannelWorks() {
        var machine = connectedPublisher(nodes: 3, at: start)
        /// Publishes call `requestID` at `seconds` and settles it as the broker says.
        func settled(_ requestID: UInt64, at seconds: Int, acked: Bool) -> [String] {
            _ = machine.timePassed(now: start + .seconds(seconds))
            _ = machine.commandReceived(publish(requestID, "m\(requestID)"))
            _ = machine.publishSent()
            let frame: IncomingFrame =
                acked ? .ack(deliveryTag: requestID, multiple: false) : .nack(deliveryTag: requestID, multiple: false)
            return machine.frameRead(frame).summary
        }
        #expect(settled(1, at: 0, acked: false) == ["failPublish(1, nacked)"])
        #expect(settled(2, at: 4, acked: true) == ["completePublish(2)"])
        #expect(settled(3, at: 8, acked: false) == ["failPublish(3, nacked)"])
        #expect(settled(4, at: 12, acked: false) == ["failPublish(4, nacked)"])
        #expect(machine.timePassed(now: start + .seconds(12)).summary == [], "nacked for 4 s only")
        #expect(machine.isConnected)
    }

    @Test(arguments: [nil, Duration.zero, .seconds(-1)])
    func withoutATimeoutAConfirmIsAwaitedForever(timeout: Duration?) {
        var machine = connectedPublisher(nodes: 2, confirmTimeout: timeout, at: start)
        _ = machine.commandReceived(publish(1, "a1"))
        _ = machine.publishSent()
        #expect(machine.nextDeadline == nil)
        #expect(machine.timePassed(now: start + .seconds(3_600)).summary == [])
        #expect(machine.isConnected)
    }

    @Test func whileShuttingDownTheDrainTimerDecidesNotTheConfirmDeadline() {
        var machine = connectedPublisher(nodes: 2, at: start)
        _ = machine.commandReceived(publish(1, "a1"))
        _ = machine.publishSent()
        #expect(machine.shutdownAsked().summary == ["startDrainTimer(5.0 seconds)"])
        #expect(machine.nextDeadline == nil)
        #expect(machine.timePassed(now: start + .seconds(6)).summary == [])
        #expect(
            machine.drainDeadlinePassed().summary == ["closeConnection", "failPublish(1, closed)", "finish"])
    }

    @Test func aConsumerHasNoDeadline() {
        var machine = ConnectionStateMachine(
            role: ConsumerStateMachine(queue: "q", prefetch: 10), declaring: ["q"], nodes: 2, backoff: backoff,
            jitter: { 1 })
        _ = machine.start()
        _ = machine.connected(consumerTag: "ctag-1")
        #expect(machine.nextDeadline == nil)
        #expect(machine.timePassed(now: start + .seconds(3_600)).summary == [])
        #expect(machine.isConnected)
    }

    @Test func theTrackerKnowsWhenItsOldestUnconfirmedMessageWasSent() {
        var tracker = ConfirmTracker()
        #expect(tracker.oldestSentAt == nil)
        tracker.track(PublishBatch(id: 1, messageCount: 3))
        tracker.sent(requestID: 1, queue: "q", at: start)
        tracker.sent(requestID: 1, queue: "q", at: start + .seconds(1))
        tracker.sent(requestID: 1, queue: "q", at: start + .seconds(2))
        #expect(tracker.oldestSentAt == start)
        _ = tracker.settle(upTo: 2, multiple: false, failure: nil)
        #expect(tracker.oldestSentAt == start, "1 is still unconfirmed")
        _ = tracker.settle(upTo: 1, multiple: false, failure: nil)
        #expect(tracker.oldestSentAt == start + .seconds(2))
        _ = tracker.settle(upTo: 3, multiple: false, failure: nil)
        #expect(tracker.oldestSentAt == nil)
    }
}

private let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1))

private func connectedPublisher(
    nodes: Int, window: Int = 8, confirmTimeout: Duration? = .seconds(5), at now: ContinuousClock.Instant
) -> ConnectionStateMachine<PublisherStateMachine> {
    var machine = ConnectionStateMachine(
        role: PublisherStateMachine(confirmWindow: window, confirmTimeout: confirmTimeout), declaring: ["q"],
        nodes: nodes, backoff: backoff, jitter: { 1 })
    _ = machine.start()
    _ = machine.timePassed(now: now)
    _ = machine.connected(consumerTag: nil)
    return machine
}

private func publish(_ requestID: UInt64, _ bodies: String...) -> ConnectionCommand<PublisherStateMachine.Command> {
    .role(.publish(requestID: requestID, messages: bodies.map { OutboundMessage(queue: "q", body: Array($0.utf8)) }))
}
