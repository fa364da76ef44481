import Testing

@testable import Messaging

/// The boundary between async callers and a connection's thread, with the test playing the thread.
struct ConnectionMailboxTests {
    private typealias PublisherMailbox = ConnectionMailbox<PublisherStateMachine.Command>
    private typealias ConsumerMailbox = ConnectionMailbox<ConsumerStateMachine.Command>

    @Test func aRequestWaitsUntilTheThreadAnswersIt() async throws {
        let mailbox = PublisherMailbox()
        let caller = Task { try await publish(through: mailbox, "a") }
        let (commands, shutdownRequested) = try await takeCommands(from: mailbox)
        #expect(!shutdownRequested)
        let id = try #require(publishRequestID(commands.first))
        #expect(commands.count == 1)
        mailbox.complete(id)
        mailbox.fail(id, MessagingError(.nacked, "too late"))  // a second answer is ignored
        try await caller.value
    }

    @Test func aCountRequestIsAnsweredWithItsNumber() async throws {
        let mailbox = PublisherMailbox()
        let caller = Task {
            try await mailbox.requestCount(closedDetail: "stopping") { .count(requestID: $0, queue: "q") }
        }
        let command = try #require(try await takeCommands(from: mailbox).commands.first)
        guard case .count(let id, "q") = command else {
            Issue.record("expected a count of q, got \(command)")
            return
        }
        mailbox.answerCount(id, 42)
        #expect(try await caller.value == 42)
    }

    @Test func commandsAreTakenInTheOrderTheyWereLeft() async throws {
        let mailbox = ConsumerMailbox()
        for tag in 1...3 as ClosedRange<UInt64> {
            mailbox.post(.role(.settle(deliveryTag: tag, generation: 1, .ack(multiple: false))))
        }
        let tags = mailbox.take().commands.map { command -> UInt64? in
            guard case .role(.settle(let tag, _, _)) = command else { return nil }
            return tag
        }
        #expect(tags == [1, 2, 3])
        #expect(mailbox.take().commands.isEmpty)
    }

    @Test func shutdownFailsRequestsNotTakenYetAndKeepsSettlements() async throws {
        let mailbox = ConsumerMailbox()
        mailbox.post(.role(.settle(deliveryTag: 1, generation: 1, .ack(multiple: false))))
        let caller = Task {
            try await mailbox.request(cancellable: false, closedDetail: "stopping") {
                .declare(requestID: $0, queues: ["x"])
            }
        }
        mailbox.requestShutdown()
        let error = await #expect(throws: MessagingError.self) { try await caller.value }
        #expect(error?.code == .closed)
        let (commands, shutdownRequested) = mailbox.take()
        #expect(shutdownRequested)
        #expect(commands.count == 1)
        guard case .role(.settle(1, 1, .ack(multiple: false))) = commands.first else {
            Issue.record("expected the settlement, got \(commands)")
            return
        }
    }

    @Test func requestsAfterShutdownFailAtOnce() async throws {
        let mailbox = PublisherMailbox()
        mailbox.requestShutdown()
        let error = await #expect(throws: MessagingError.self) { try await publish(through: mailbox, "a") }
        #expect(error?.code == .closed)
        #expect(error?.detail == "the publisher is shutting down")
        #expect(mailbox.take().commands.isEmpty)
    }

    @Test func cancellingARequestTheThreadHasNotTakenWithdrawsItAtOnce() async throws {
        let mailbox = PublisherMailbox()
        let caller = Task { try await publish(through: mailbox, "a") }
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
        #expect(mailbox.take().commands.isEmpty)
    }

    @Test func cancellingARequestTheThreadHasTakenAsksTheStateMachine() async throws {
        let mailbox = PublisherMailbox()
        let caller = Task { try await publish(through: mailbox, "a") }
        let id = try #require(publishRequestID(try await takeCommands(from: mailbox).commands.first))
        caller.cancel()
        let cancel = try #require(try await takeCommands(from: mailbox).commands.first)
        guard case .cancel(let cancelled) = cancel, cancelled == id else {
            Issue.record("expected a cancel of request \(id), got \(cancel)")
            return
        }
        // The state machine withdrew it (it had not started): the thread answers with CancellationError.
        mailbox.fail(id, CancellationError())
        await #expect(throws: CancellationError.self) { try await caller.value }
    }

    @Test func finishingFailsCallersStillWaitingAndDropsLaterCommands() async throws {
        let mailbox = ConsumerMailbox()
        let caller = Task {
            try await mailbox.request(cancellable: false, closedDetail: "stopping") {
                .declare(requestID: $0, queues: ["x"])
            }
        }
        _ = try await takeCommands(from: mailbox)
        mailbox.setConnected(true)
        #expect(mailbox.isConnected)
        mailbox.finish()
        #expect(!mailbox.isConnected)
        let error = await #expect(throws: MessagingError.self) { try await caller.value }
        #expect(error?.code == .closed)
        mailbox.post(.role(.settle(deliveryTag: 1, generation: 1, .ack(multiple: false))))
        #expect(mailbox.take().commands.isEmpty)
    }

    @Test func runMayStartOnce() {
        let mailbox = PublisherMailbox()
        #expect(mailbox.markStarted())
        #expect(!mailbox.markStarted())
    }

    @Test func aSignalWakesAWaitAndAnIdleWaitTimesOut() {
        let wakeup = Wakeup()
        wakeup.signal()
        let clock = ContinuousClock()
        #expect(clock.measure { wakeup.wait(socket: nil, timeout: .seconds(10)) } < .seconds(5))
        // The signal was drained: the next wait sleeps until its timeout.
        #expect(clock.measure { wakeup.wait(socket: nil, timeout: .milliseconds(50)) } >= .milliseconds(50))
    }
}

// MARK: - Helpers

private func publish(through mailbox: ConnectionMailbox<PublisherStateMachine.Command>, _ body: String) async throws {
    try await mailbox.request(cancellable: true, closedDetail: "the publisher is shutting down") { id in
        .role(.publish(requestID: id, messages: [OutboundMessage(queue: "q", body: Array(body.utf8))]))
    }
}

private func publishRequestID(_ command: ConnectionCommand<PublisherStateMachine.Command>?) -> UInt64? {
    guard case .role(.publish(let id, _)) = command else { return nil }
    return id
}

/// Takes the commands once some have arrived (callers run in other tasks), failing after `timeout`.
///
/// It sleeps between looks rather than spinning on `Task.yield()`: in the full suite the cooperative pool is busy,
/// and a spinning task can keep the caller it waits for from ever being scheduled.
private func takeCommands<Command>(
    from mailbox: ConnectionMailbox<Command>, timeout: Duration = .seconds(30)
) async throws -> (commands: [ConnectionCommand<Command>], shutdownRequested: Bool) {
    let deadline = ContinuousClock.now + timeout
    var pause = Duration.milliseconds(1)
    while ContinuousClock.now < deadline {
        let taken = mailbox.take()
        if !taken.commands.isEmpty { return taken }
        try await Task.sleep(for: pause)
        pause = min(pause * 2, .milliseconds(50))
    }
    throw MailboxTestFailure("no command arrived within \(timeout)")
}

private struct MailboxTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
