import Testing

@testable import Messaging

/// The connection life cycle with a publisher role: every event is fed by hand and the actions are checked, as
/// vapor/postgres-nio tests its ConnectionStateMachine. No broker, no socket, no thread.
struct PublisherStateMachineTests {
    @Test func connectsDeclaringItsQueuesThenServes() {
        var machine = publisherMachine(queues: ["a", "b", "a"])
        #expect(machine.start().summary == ["connect(declare a, declare b, selectConfirms)"])
        #expect(!machine.isConnected)
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(1)"])
        #expect(machine.isConnected)
        #expect(machine.commandReceived(publish(1, "a1")).summary == ["sendPublish(a1)"])
        #expect(machine.publishSent().summary == [])
        #expect(machine.frameRead(.ack(deliveryTag: 1, multiple: false)).summary == ["completePublish(1)"])
    }

    @Test func failedAttemptsBackOffLongerAndALostConnectionStartsCountingAgain() {
        var machine = publisherMachine()
        _ = machine.start()
        #expect(
            machine.connectFailed(refused).summary == ["reportConnectFailed(1, notConnected)", "backOff(0.1 seconds)"])
        #expect(machine.backoffElapsed().summary == ["connect(declare q, selectConfirms)"])
        #expect(
            machine.connectFailed(refused).summary == ["reportConnectFailed(2, notConnected)", "backOff(0.2 seconds)"])
        _ = machine.backoffElapsed()
        #expect(
            machine.connectFailed(refused).summary == ["reportConnectFailed(3, notConnected)", "backOff(0.4 seconds)"])
        _ = machine.backoffElapsed()
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(1)"], "a first connection")

        #expect(
            machine.connectionLost(lost).summary == [
                "abandonConnection(connectionLost, reconnecting)", "backOff(0.1 seconds)",
            ])
        #expect(!machine.isConnected)
        _ = machine.backoffElapsed()
        #expect(
            machine.connectFailed(refused).summary == ["reportConnectFailed(1, notConnected)", "backOff(0.1 seconds)"])
        _ = machine.backoffElapsed()
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(2, reconnect)"])
    }

    @Test func publishesQueuedWhileDisconnectedAreSentOnConnectAndCancellableUntilThen() {
        var machine = publisherMachine(window: 2)
        #expect(machine.commandReceived(publish(1, "a1", "a2")).summary == [], "before the thread started")
        _ = machine.start()
        _ = machine.connectFailed(refused)
        #expect(machine.commandReceived(publish(2, "b1")).summary == [])
        #expect(machine.commandReceived(publish(3, "c1")).summary == [])
        #expect(machine.commandReceived(.cancel(requestID: 3)).summary == ["cancelPublish(3)"])
        _ = machine.backoffElapsed()
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(1)", "sendPublish(a1)"])
        #expect(machine.publishSent().summary == ["sendPublish(a2)"])
        #expect(machine.publishSent().summary == [], "the window of 2 is full")
        #expect(machine.frameRead(.ack(deliveryTag: 1, multiple: false)).summary == ["sendPublish(b1)"])
        #expect(machine.commandReceived(.cancel(requestID: 2)).summary == [], "started: it runs to its end")
        #expect(machine.publishSent().summary == [])
        #expect(
            machine.frameRead(.ack(deliveryTag: 3, multiple: true)).summary == [
                "completePublish(1)", "completePublish(2)",
            ])
    }

    @Test func aLostConnectionFailsStartedCallsKeepsWaitingOnesAndNumbersFromOneAgain() {
        var machine = connectedPublisher(window: 1)
        #expect(machine.commandReceived(publish(1, "a1", "a2")).summary == ["sendPublish(a1)"])
        #expect(machine.publishSent().summary == [])
        #expect(machine.commandReceived(publish(2, "b1")).summary == [])
        #expect(
            machine.connectionLost(lost).summary == [
                "abandonConnection(connectionLost, reconnecting)", "failPublish(1, connectionLost)",
                "backOff(0.1 seconds)",
            ])
        // A confirm of the old channel can no longer arrive; the next channel counts from 1.
        _ = machine.backoffElapsed()
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(2, reconnect)", "sendPublish(b1)"])
        #expect(machine.publishSent().summary == [])
        #expect(machine.frameRead(.ack(deliveryTag: 1, multiple: false)).summary == ["completePublish(2)"])
    }

    @Test func aCallWhoseSendWasInterruptedFailsWithTheConnection() {
        var machine = connectedPublisher()
        #expect(machine.commandReceived(publish(1, "a1")).summary == ["sendPublish(a1)"])
        // The driver's basic.publish failed: it reports the loss instead of publishSent.
        #expect(
            machine.connectionLost(lost).summary == [
                "abandonConnection(connectionLost, reconnecting)", "failPublish(1, connectionLost)",
                "backOff(0.1 seconds)",
            ])
    }

    @Test func theConfirmWindowBoundsMessagesInFlight() {
        var machine = connectedPublisher(window: 2)
        #expect(machine.commandReceived(publish(1, "a1", "a2", "a3")).summary == ["sendPublish(a1)"])
        #expect(machine.publishSent().summary == ["sendPublish(a2)"])
        #expect(machine.publishSent().summary == [])
        #expect(machine.frameRead(.ack(deliveryTag: 2, multiple: false)).summary == ["sendPublish(a3)"])
        #expect(machine.publishSent().summary == [])
        #expect(machine.frameRead(.ack(deliveryTag: 3, multiple: true)).summary == ["completePublish(1)"])
    }

    @Test func aMessageThatCannotBeEncodedFailsItsCallAndTheNextCallGoesOn() {
        var machine = connectedPublisher()
        #expect(machine.commandReceived(publish(1, "a1", "a2", "a3")).summary == ["sendPublish(a1)"])
        #expect(machine.commandReceived(publish(2, "b1")).summary == [])
        #expect(machine.publishSent().summary == ["sendPublish(a2)"])
        let tooBig = MessagingError(.protocolError, "table too big")
        #expect(machine.publishRefused(tooBig).summary == ["failPublish(1, protocolError)", "sendPublish(b1)"])
        #expect(machine.publishSent().summary == [])
        // a1 went out as number 1 and b1 as number 2; a1's confirm is ignored, its call has failed already.
        #expect(machine.frameRead(.ack(deliveryTag: 2, multiple: true)).summary == ["completePublish(2)"])
    }

    @Test func nacksAndReturnsFailTheirCalls() {
        var machine = connectedPublisher()
        _ = machine.commandReceived(publish(1, "a1"))
        _ = machine.publishSent()
        _ = machine.commandReceived(publish(2, "b1"))
        _ = machine.publishSent()
        #expect(machine.frameRead(.returned(routingKey: "q", replyCode: 312, replyText: "NO_ROUTE")).summary == [])
        #expect(
            machine.frameRead(.returned(routingKey: "other", replyCode: 312, replyText: "NO_ROUTE")).summary == [
                "log(warning, basic.return for 'other' matches no unconfirmed publish)"
            ])
        #expect(machine.frameRead(.ack(deliveryTag: 1, multiple: false)).summary == ["failPublish(1, unroutable)"])
        #expect(machine.frameRead(.nack(deliveryTag: 2, multiple: false)).summary == ["failPublish(2, nacked)"])
        #expect(machine.isConnected)
    }

    @Test func shutdownDrainsConfirmsUntilTheDeadlineThenCloses() {
        var machine = connectedPublisher(window: 1)
        #expect(machine.commandReceived(publish(1, "a1", "a2")).summary == ["sendPublish(a1)"])
        #expect(machine.publishSent().summary == [])
        #expect(machine.commandReceived(publish(2, "b1")).summary == [])
        #expect(machine.shutdownAsked().summary == ["failPublish(2, closed)", "startDrainTimer(5.0 seconds)"])
        #expect(!machine.isConnected)
        // The call being sent is finished; its second message goes once the window has room.
        #expect(machine.frameRead(.ack(deliveryTag: 1, multiple: false)).summary == ["sendPublish(a2)"])
        #expect(machine.publishSent().summary == [])
        #expect(machine.drainDeadlinePassed().summary == ["closeConnection", "failPublish(1, closed)", "finish"])
    }

    @Test func shutdownClosesAsSoonAsTheLastConfirmArrives() {
        var machine = connectedPublisher()
        _ = machine.commandReceived(publish(1, "a1"))
        _ = machine.publishSent()
        #expect(machine.shutdownAsked().summary == ["startDrainTimer(5.0 seconds)"])
        #expect(
            machine.frameRead(.ack(deliveryTag: 1, multiple: false)).summary == [
                "completePublish(1)", "closeConnection", "finish",
            ])
    }

    @Test func shutdownWithNothingOutstandingClosesAtOnce() {
        var machine = connectedPublisher()
        #expect(machine.shutdownAsked().summary == ["closeConnection", "finish"])
    }

    @Test func shutdownWhileDisconnectedFailsWhatWaitsAndFinishes() {
        var machine = publisherMachine()
        _ = machine.start()
        _ = machine.connectFailed(refused)
        _ = machine.commandReceived(publish(1, "a1"))
        _ = machine.commandReceived(.declare(requestID: 2, queues: ["x"]))
        #expect(machine.shutdownAsked().summary == ["failDeclaration(2, closed)", "failPublish(1, closed)", "finish"])
    }

    @Test func aConnectionLostWhileDrainingFinishesWithoutReconnecting() {
        var machine = connectedPublisher()
        _ = machine.commandReceived(publish(1, "a1"))
        _ = machine.publishSent()
        _ = machine.shutdownAsked()
        #expect(
            machine.connectionLost(lost).summary == [
                "abandonConnection(connectionLost)", "failPublish(1, connectionLost)", "finish",
            ])
    }

    @Test func aBrokerCloseIsAnsweredLoggedAndReconnected() {
        var machine = connectedPublisher()
        let forced = BrokerClose(isConnection: true, replyCode: 320, replyText: "CONNECTION_FORCED - shutdown")
        #expect(
            machine.frameRead(.close(forced)).summary == [
                "replyCloseOk(connection)",
                "log(warning, broker closed the connection: 320 CONNECTION_FORCED - shutdown)",
                "abandonConnection(brokerClosed, reconnecting)", "backOff(0.1 seconds)",
            ])
        _ = machine.backoffElapsed()
        _ = machine.connected(consumerTag: nil)
        let misconfigured = BrokerClose(isConnection: false, replyCode: 406, replyText: "PRECONDITION_FAILED")
        #expect(
            machine.frameRead(.close(misconfigured)).summary.prefix(2) == [
                "replyCloseOk(channel)", "log(error, broker closed the channel: 406 PRECONDITION_FAILED)",
            ])
    }

    @Test func aDeliveryOnAPublisherConnectionIsAProtocolError() {
        var machine = connectedPublisher()
        let frame = IncomingFrame.deliver(deliveryTag: 1, redelivered: false, body: [], properties: MessageProperties())
        #expect(
            machine.frameRead(frame).summary == [
                "abandonConnection(protocolError, reconnecting)", "backOff(0.1 seconds)",
            ])
    }

    @Test func unknownMethodsAreIgnored() {
        var machine = connectedPublisher()
        #expect(machine.frameRead(.other("method 0x3c0028")).summary == ["log(debug, ignoring method 0x3c0028)"])
        #expect(machine.isConnected)
    }
}

/// Queue declarations: asked before or after connecting, declared again on every reconnect.
struct DeclarationStateMachineTests {
    @Test func aDeclarationAskedBeforeConnectingIsDeclaredOnceConnectedAndThenOnEveryConnect() {
        var machine = publisherMachine(queues: ["q"])
        #expect(machine.commandReceived(.declare(requestID: 7, queues: ["x", "q"])).summary == [])
        #expect(machine.commandReceived(.declare(requestID: 8, queues: ["q"])).summary == [])
        #expect(machine.start().summary == ["connect(declare q, selectConfirms)"])
        #expect(
            machine.connected(consumerTag: nil).summary == [
                "reportConnected(1)", "declare(7, x q)", "completeDeclaration(8)",
            ])
        #expect(machine.queuesDeclared(requestID: 7).summary == ["completeDeclaration(7)"])
        _ = machine.connectionLost(lost)
        #expect(machine.backoffElapsed().summary == ["connect(declare q, declare x, selectConfirms)"])
    }

    @Test func aDeclarationAskedWhileConnectedIsDeclaredNowAndOnEveryReconnect() {
        var machine = connectedPublisher()
        #expect(machine.commandReceived(.declare(requestID: 8, queues: ["y"])).summary == ["declare(8, y)"])
        #expect(machine.queuesDeclared(requestID: 8).summary == ["completeDeclaration(8)"])
        _ = machine.connectionLost(lost)
        #expect(machine.backoffElapsed().summary == ["connect(declare q, declare y, selectConfirms)"])
    }

    @Test func aFailedDeclarationFailsItsCallerAndTheConnection() {
        var machine = connectedPublisher()
        #expect(machine.commandReceived(.declare(requestID: 9, queues: ["z"])).summary == ["declare(9, z)"])
        let refused = MessagingError(.brokerClosed, "declaring queue 'z': 406 PRECONDITION_FAILED")
        #expect(
            machine.declarationFailed(requestID: 9, refused).summary == [
                "failDeclaration(9, brokerClosed)", "abandonConnection(brokerClosed, reconnecting)",
                "backOff(0.1 seconds)",
            ])
    }

    @Test func declarationsInFlightFailWithTheConnection() {
        var machine = connectedPublisher()
        _ = machine.commandReceived(.declare(requestID: 1, queues: ["a"]))
        _ = machine.commandReceived(.declare(requestID: 2, queues: ["b"]))
        #expect(
            machine.declarationFailed(requestID: 1, lost).summary.prefix(3) == [
                "failDeclaration(1, connectionLost)", "abandonConnection(connectionLost, reconnecting)",
                "failDeclaration(2, connectionLost)",
            ])
    }
}

/// The connection life cycle with a consumer role.
struct ConsumerStateMachineTests {
    @Test func connectsWithPrefetchAndConsume() {
        var machine = consumerMachine()
        #expect(machine.start().summary == ["connect(declare q, declare q.dead, setPrefetch 10, consume q)"])
        #expect(machine.connected(consumerTag: "ctag-1").summary == ["reportConnected(1)"])
        #expect(machine.isConnected)
    }

    @Test func deliveriesCarryTheirConnectionAndItsContent() throws {
        var machine = connectedConsumer()
        let properties = MessageProperties(messageID: "m-1", type: "user_created")
        let actions = machine.frameRead(
            .deliver(deliveryTag: 5, redelivered: true, body: Array("a".utf8), properties: properties))
        guard case .yieldDelivery(let delivery) = try #require(actions.first), actions.count == 1 else {
            Issue.record("expected one delivery, got \(actions.summary)")
            return
        }
        #expect(delivery.body == Array("a".utf8))
        #expect(delivery.properties == properties)
        #expect(delivery.redelivered)
        #expect(delivery.queue == "q")
        #expect(delivery.deliveryTag == 5 && delivery.generation == 1)
    }

    @Test func settlementsOfAnEarlierConnectionAreDroppedAfterAReconnect() {
        var machine = connectedConsumer()
        #expect(machine.frameRead(deliver(1, "a")).summary == ["yieldDelivery(a, tag 1 of 1)"])
        #expect(machine.commandReceived(settle(1, of: 1)).summary == ["ack(1)"])
        #expect(machine.frameRead(deliver(2, "b")).summary == ["yieldDelivery(b, tag 2 of 1)"])
        #expect(
            machine.connectionLost(lost).summary == [
                "abandonConnection(connectionLost, reconnecting)", "backOff(0.1 seconds)",
            ])
        #expect(machine.commandReceived(settle(2, of: 1)).summary == [dropped(2)], "no channel while disconnected")
        _ = machine.backoffElapsed()
        #expect(machine.connected(consumerTag: "ctag-2").summary == ["reportConnected(2, reconnect)"])
        #expect(machine.frameRead(deliver(1, "b", redelivered: true)).summary == ["yieldDelivery(b, tag 1 of 2)"])
        // Tag 2 of the first connection must not settle tag 2 of the second; tag 1 of the second is the live one.
        #expect(machine.commandReceived(settle(2, of: 1)).summary == [dropped(2)])
        #expect(machine.commandReceived(settle(1, of: 2, .reject(requeue: true))).summary == ["reject(1, requeue)"])
    }

    @Test func shutdownCancelsTheConsumerAndFlushesAcksUntilCancelOk() {
        var machine = connectedConsumer()
        _ = machine.frameRead(deliver(1, "a"))
        _ = machine.frameRead(deliver(2, "b"))
        #expect(machine.shutdownAsked().summary == ["cancelConsumer(ctag-1)", "startDrainTimer(5.0 seconds)"])
        #expect(!machine.isConnected)
        #expect(machine.commandReceived(settle(1, of: 1)).summary == ["ack(1)"])
        #expect(
            machine.frameRead(deliver(3, "c")).summary == [
                "log(debug, dropping delivery 3 that arrived while cancelling; the broker redelivers it)"
            ])
        #expect(machine.commandReceived(settle(2, of: 1, .ack(multiple: true))).summary == ["ack(2, multiple)"])
        #expect(machine.frameRead(.cancelOk).summary == ["closeConnection", "finishDeliveries", "finish"])
    }

    @Test func shutdownWithoutCancelOkClosesAtTheDeadline() {
        var machine = connectedConsumer()
        _ = machine.shutdownAsked()
        #expect(
            machine.drainDeadlinePassed().summary == [
                "log(warning, AMQP consumer did not cancel cleanly: no basic.cancel-ok in time)",
                "closeConnection", "finishDeliveries", "finish",
            ])
    }

    @Test func shutdownWhileDisconnectedEndsTheDeliveries() {
        var machine = consumerMachine()
        _ = machine.start()
        _ = machine.connectFailed(refused)
        #expect(machine.commandReceived(settle(1, of: 1)).summary == [dropped(1)])
        #expect(machine.shutdownAsked().summary == ["finishDeliveries", "finish"])
    }

    @Test func theBrokerCancellingTheConsumerMeansReconnecting() {
        var machine = connectedConsumer()
        #expect(
            machine.frameRead(.cancelledByBroker).summary == [
                "abandonConnection(brokerClosed, reconnecting)", "backOff(0.1 seconds)",
            ])
        #expect(machine.backoffElapsed().summary == ["connect(declare q, declare q.dead, setPrefetch 10, consume q)"])
    }

    @Test func confirmsOnAConsumerConnectionAreAProtocolError() {
        var machine = connectedConsumer()
        #expect(
            machine.frameRead(.ack(deliveryTag: 1, multiple: false)).summary == [
                "abandonConnection(protocolError, reconnecting)", "backOff(0.1 seconds)",
            ])
    }
}

/// Invalid transitions stop the process, as swift-nio's state machines do.
struct InvalidTransitionTests {
    @Test func aFrameWithoutAConnectionStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            var machine = ConnectionStateMachine(
                role: PublisherStateMachine(confirmWindow: 1), declaring: [], backoff: .retry)
            _ = machine.frameRead(.ack(deliveryTag: 1, multiple: false))
        }
    }

    @Test func aSecondShutdownStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            var machine = ConnectionStateMachine(
                role: ConsumerStateMachine(queue: "q", prefetch: 1), declaring: [], backoff: .retry)
            _ = machine.shutdownAsked()
            _ = machine.shutdownAsked()
        }
    }
}

// MARK: - Helpers

private let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1))
private let refused = MessagingError(.notConnected, "connecting: connection refused")
private let lost = MessagingError(.connectionLost, "reading: socket closed")

private func publisherMachine(window: Int = 8, queues: [String] = ["q"]) -> ConnectionStateMachine<
    PublisherStateMachine
> {
    ConnectionStateMachine(
        role: PublisherStateMachine(confirmWindow: window), declaring: queues, backoff: backoff, jitter: { 1 })
}

private func connectedPublisher(window: Int = 8) -> ConnectionStateMachine<PublisherStateMachine> {
    var machine = publisherMachine(window: window)
    _ = machine.start()
    _ = machine.connected(consumerTag: nil)
    return machine
}

private func publish(_ requestID: UInt64, _ bodies: String...) -> ConnectionCommand<PublisherStateMachine.Command> {
    .role(.publish(requestID: requestID, messages: bodies.map { OutboundMessage(queue: "q", body: Array($0.utf8)) }))
}

private func consumerMachine() -> ConnectionStateMachine<ConsumerStateMachine> {
    ConnectionStateMachine(
        role: ConsumerStateMachine(queue: "q", prefetch: 10), declaring: ["q", "q.dead"], backoff: backoff,
        jitter: { 1 })
}

private func connectedConsumer() -> ConnectionStateMachine<ConsumerStateMachine> {
    var machine = consumerMachine()
    _ = machine.start()
    _ = machine.connected(consumerTag: "ctag-1")
    return machine
}

private func deliver(_ tag: UInt64, _ body: String, redelivered: Bool = false) -> IncomingFrame {
    .deliver(deliveryTag: tag, redelivered: redelivered, body: Array(body.utf8), properties: MessageProperties())
}

private func settle(
    _ tag: UInt64, of generation: UInt64, _ settlement: Settlement = .ack(multiple: false)
) -> ConnectionCommand<ConsumerStateMachine.Command> {
    .role(.settle(deliveryTag: tag, generation: generation, settlement))
}

private func dropped(_ tag: UInt64) -> String {
    "log(debug, dropping settlement of delivery \(tag) from an earlier connection; it will be redelivered)"
}

/// Several broker nodes: tried in turn, the next one at once after a failure or a loss, the backoff only after a
/// whole round failed.
struct ClusterStateMachineTests {
    @Test func attemptsGoThroughTheNodesInTurnAndBackOffOnlyAfterEveryNodeFailed() {
        var machine = clusterPublisher(nodes: 3)
        #expect(machine.start().summary == ["connect(declare q, selectConfirms)"])
        #expect(
            machine.connectFailed(refused).summary == [
                "reportConnectFailed(1, notConnected)", "connect(node 2: declare q, selectConfirms)",
            ])
        #expect(
            machine.connectFailed(refused).summary == [
                "reportConnectFailed(2, node 2, notConnected)", "connect(node 3: declare q, selectConfirms)",
            ])
        #expect(
            machine.connectFailed(refused).summary == [
                "reportConnectFailed(3, node 3, notConnected)", "backOff(0.1 seconds)",
            ])
        #expect(machine.backoffElapsed().summary == ["connect(declare q, selectConfirms)"])
        _ = machine.connectFailed(refused)
        _ = machine.connectFailed(refused)
        #expect(
            machine.connectFailed(refused).summary == [
                "reportConnectFailed(6, node 3, notConnected)", "backOff(0.2 seconds)",
            ], "the second round failed: the backoff doubles")
        _ = machine.backoffElapsed()
        _ = machine.connectFailed(refused)
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(1, node 2)"])
    }

    @Test func aLostConnectionTriesTheNextNodeAtOnceWithoutWaitingForTheLostOne() {
        var machine = clusterPublisher(nodes: 3)
        _ = machine.start()
        _ = machine.connected(consumerTag: nil)
        #expect(machine.commandReceived(publish(1, "a1")).summary == ["sendPublish(a1)"])
        #expect(machine.publishSent().summary == [])
        #expect(
            machine.connectionLost(lost).summary == [
                "abandonConnection(connectionLost, reconnecting)", "failPublish(1, connectionLost)",
                "connect(node 2: declare q, selectConfirms)",
            ])
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(2, reconnect, node 2)"])
        // Node 2 goes too, and node 3 is down: node 1 (back by now) is tried before any backoff.
        _ = machine.connectionLost(lost)
        #expect(
            machine.connectFailed(refused).summary == [
                "reportConnectFailed(1, node 3, notConnected)", "connect(declare q, selectConfirms)",
            ])
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(3, reconnect)"])
    }

    /// The failover seen on a cluster: node 1 stops (320), and node 2 closes the new connection at once (541: its
    /// quorum queue elects a leader). Each publish in flight fails with `.connectionLost`, so its caller retries,
    /// and the retry goes out on node 3's connection.
    @Test func aConnectionTheBrokerClosesRightAfterConnectingFailsItsPublishAndTheRetryGoesOut() {
        let forced = BrokerClose(isConnection: true, replyCode: 320, replyText: "CONNECTION_FORCED - shutdown")
        let electing = BrokerClose(isConnection: true, replyCode: 541, replyText: "INTERNAL_ERROR")
        var machine = clusterPublisher(nodes: 3)
        _ = machine.start()
        _ = machine.connected(consumerTag: nil)
        #expect(machine.commandReceived(publish(1, "a1")).summary == ["sendPublish(a1)"])
        #expect(machine.publishSent().summary == [])
        #expect(
            machine.frameRead(.close(forced)).summary.filter { !$0.hasPrefix("log") } == [
                "replyCloseOk(connection)", "abandonConnection(brokerClosed, reconnecting)",
                "failPublish(1, connectionLost)", "connect(node 2: declare q, selectConfirms)",
            ])
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(2, reconnect, node 2)"])
        #expect(machine.commandReceived(publish(2, "a1")).summary == ["sendPublish(a1)"])
        #expect(machine.publishSent().summary == [])
        #expect(
            machine.frameRead(.close(electing)).summary.filter { !$0.hasPrefix("log") } == [
                "replyCloseOk(connection)", "abandonConnection(brokerClosed, reconnecting)",
                "failPublish(2, connectionLost)", "connect(node 3: declare q, selectConfirms)",
            ])
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(3, reconnect, node 3)"])
        #expect(machine.commandReceived(publish(3, "a1")).summary == ["sendPublish(a1)"])
        #expect(machine.publishSent().summary == [])
        #expect(machine.frameRead(.ack(deliveryTag: 1, multiple: false)).summary == ["completePublish(3)"])
    }

    @Test func aBrokerCloseOnANodeAlsoMovesOn() {
        var machine = clusterPublisher(nodes: 2)
        _ = machine.start()
        _ = machine.connectFailed(refused)
        _ = machine.connected(consumerTag: nil)
        let forced = BrokerClose(isConnection: true, replyCode: 320, replyText: "CONNECTION_FORCED - shutdown")
        #expect(machine.frameRead(.close(forced)).summary.last == "connect(declare q, selectConfirms)")
    }
}

/// A queue that exists with another type: fatal while setting up a connection, a failed call at run time.
struct QueueConflictStateMachineTests {
    private let conflict = MessagingError(.queueConflict, "queue 'q' exists as a classic queue but ...")

    @Test func aConflictWhileSettingUpStopsTheConnectionInsteadOfRetrying() {
        var machine = clusterPublisher(nodes: 3)
        _ = machine.commandReceived(publish(1, "a1"))
        _ = machine.commandReceived(.declare(requestID: 2, queues: ["x"]))
        _ = machine.start()
        #expect(
            machine.connectFailed(conflict).summary == [
                "reportConnectFailed(1, queueConflict)", "failDeclaration(2, queueConflict)",
                "stopWithError(queueConflict)", "failPublish(1, closed)", "finish",
            ])
        #expect(machine.state.isClosed)
    }

    @Test func aConsumerStopsToo() {
        var machine = consumerMachine()
        _ = machine.start()
        #expect(
            machine.connectFailed(conflict).summary == [
                "reportConnectFailed(1, queueConflict)", "stopWithError(queueConflict)", "finishDeliveries", "finish",
            ])
    }

    @Test func aRunTimeDeclarationThatConflictsFailsAndIsNotDeclaredOnReconnect() {
        var machine = connectedPublisher()
        #expect(machine.commandReceived(.declare(requestID: 5, queues: ["q", "z"])).summary == ["declare(5, q z)"])
        #expect(
            machine.declarationFailed(requestID: 5, conflict).summary == [
                "failDeclaration(5, queueConflict)", "abandonConnection(queueConflict, reconnecting)",
                "backOff(0.1 seconds)",
            ])
        #expect(
            machine.backoffElapsed().summary == ["connect(declare q, selectConfirms)"],
            "z is forgotten; q, declared at creation, stays")
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(2, reconnect)"])
    }

    @Test func aConflictingDeclarationAskedWhileDisconnectedFailsAloneAfterConnecting() {
        var machine = publisherMachine()
        _ = machine.start()
        _ = machine.connectFailed(refused)
        _ = machine.commandReceived(.declare(requestID: 3, queues: ["z"]))
        #expect(machine.backoffElapsed().summary == ["connect(declare q, selectConfirms)"])
        #expect(machine.connected(consumerTag: nil).summary == ["reportConnected(1)", "declare(3, z)"])
        #expect(
            machine.declarationFailed(requestID: 3, conflict).summary == [
                "failDeclaration(3, queueConflict)", "abandonConnection(queueConflict, reconnecting)",
                "backOff(0.1 seconds)",
            ])
        #expect(machine.backoffElapsed().summary == ["connect(declare q, selectConfirms)"])
    }

    @Test func aDeclarationLostWithItsConnectionIsNotDeclaredOnReconnectEither() {
        var machine = connectedPublisher()
        _ = machine.commandReceived(.declare(requestID: 1, queues: ["y"]))
        _ = machine.connectionLost(lost)
        #expect(machine.backoffElapsed().summary == ["connect(declare q, selectConfirms)"])
    }
}

extension ConnectionStateMachine.State {
    fileprivate var isClosed: Bool {
        if case .closed = self { true } else { false }
    }
}

private func clusterPublisher(nodes: Int) -> ConnectionStateMachine<PublisherStateMachine> {
    ConnectionStateMachine(
        role: PublisherStateMachine(confirmWindow: 8), declaring: ["q"], nodes: nodes, backoff: backoff, jitter: { 1 })
}
