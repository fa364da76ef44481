import Foundation
import Testing

@testable import Messaging

/// What AMQP can carry, checked before anything is sent: every short-string field, header keys, the whole properties
/// frame, the routing key; and the fitting a dead-letter move uses.
struct AMQPLimitsTests {
    private static let long = String(repeating: "é", count: 128)  // 128 characters, 256 bytes
    private static let fits = String(repeating: "a", count: 255)

    @Test(arguments: ["content_type", "message_id", "type", "app_id"])
    func everyShortStringIsLimitedTo255Bytes(name: String) {
        func properties(_ value: String) -> MessageProperties {
            switch name {
            case "content_type": MessageProperties(contentType: value)
            case "message_id": MessageProperties(messageID: value)
            case "type": MessageProperties(type: value)
            default: MessageProperties(appID: value)
            }
        }
        #expect(properties(Self.fits).amqpProblem(frameMax: AMQPLimits.frameMax) == nil)
        let problem = properties(Self.long).amqpProblem(frameMax: AMQPLimits.frameMax)
        #expect(problem?.contains(name) == true, "\(problem ?? "nil")")
        #expect(problem?.contains("256 bytes") == true, "bytes, not characters")
    }

    @Test func headerKeysAreShortStrings() {
        let properties = MessageProperties(headers: [Self.long: "v"])
        #expect(properties.amqpProblem(frameMax: AMQPLimits.frameMax)?.contains("header key") == true)
    }

    @Test func headerValuesAreLongStringsButTheTableMustFitTheFrame() {
        let oneLargeValue = MessageProperties(headers: ["x-error": String(repeating: "x", count: 140_000)])
        #expect(oneLargeValue.amqpProblem(frameMax: AMQPLimits.frameMax)?.contains("properties are") == true)
        let manySmall = MessageProperties(
            headers: Dictionary(uniqueKeysWithValues: (0..<10_000).map { ("h\($0)", "value") }))
        #expect(manySmall.amqpProblem(frameMax: AMQPLimits.frameMax) != nil, "a huge table of small entries")
        let justFits = MessageProperties(headers: ["x": String(repeating: "x", count: 3_000)])
        #expect(justFits.amqpProblem(frameMax: AMQPLimits.minimumFrameSize) == nil)
        #expect(justFits.amqpProblem(frameMax: 3_000) != nil, "the negotiated frame size counts")
    }

    @Test func theEncodedSizeIsExact() {
        // delivery_mode 1 + content_type (1+16) + message_id (1+2) + timestamp 8 + table 4 + entry (1+1+1+4+1)
        let properties = MessageProperties(
            messageID: "id", timestamp: 1, headers: ["k": "v"])
        #expect(properties.encodedSize == 1 + 17 + 3 + 8 + 4 + 8)
    }

    @Test func theRoutingKeyAndTheBodyAreChecked() {
        let longQueue = OutboundMessage(queue: String(repeating: "q", count: 256), body: [])
        #expect(longQueue.unencodableError(frameMax: AMQPLimits.frameMax)?.code == .unencodable)
        let fine = OutboundMessage(queue: "queue_order", body: Array(repeating: 0, count: 1_000_000))
        #expect(fine.unencodableError(frameMax: AMQPLimits.frameMax) == nil, "bodies are split into frames")
    }

    @Test func fittingDropsWhatCannotBeCarriedAndKeepsTheRest() {
        let properties = MessageProperties(
            messageID: Self.long, type: "user_created",
            headers: [
                "traceparent": "00-ab-cd-01", "x-big": String(repeating: "b", count: 200_000),
                Self.long: "long key", "x-error": "why",
            ])
        let (fitted, dropped) = properties.fittedToAMQP(keeping: ["x-error"])
        #expect(fitted.amqpProblem(frameMax: AMQPLimits.frameMax) == nil)
        #expect(fitted.messageID == nil)
        #expect(fitted.type == "user_created")
        #expect(fitted.headers == ["traceparent": "00-ab-cd-01", "x-error": "why"])
        #expect(dropped.count == 3, "\(dropped)")
        #expect(dropped.contains { $0.hasPrefix("message_id") })
        #expect(dropped.contains { $0.contains("x-big") })
    }

    @Test func fittingAHugeTableOfSmallHeadersKeepsTheNamedOnes() {
        var headers = Dictionary(uniqueKeysWithValues: (0..<20_000).map { ("h\($0)", "value") })
        headers["x-error"] = "why"
        let (fitted, dropped) = MessageProperties(headers: headers).fittedToAMQP(keeping: ["x-error"])
        #expect(fitted.amqpProblem(frameMax: AMQPLimits.frameMax) == nil)
        #expect(fitted.headers["x-error"] == "why")
        #expect(!dropped.isEmpty)
    }

    @Test func truncatingCountsBytesAndCutsAtACharacterBoundary() {
        #expect(AMQPLimits.truncating("short", toBytes: 10) == "short")
        let cut = AMQPLimits.truncating(String(repeating: "é", count: 100), toBytes: 11)
        #expect(cut.utf8.count <= 11)
        #expect(cut == "éééé…")
        let marks = "a" + String(repeating: "\u{301}", count: 1_000)  // one character, 2001 bytes
        #expect(AMQPLimits.truncating(marks, toBytes: 100).utf8.count <= 100)
    }
}

/// The publisher refuses a call it cannot carry before anything is sent, and waits while the broker blocks it.
struct PublisherLimitsAndFlowControlTests {
    @Test func aCallWithAnUnencodableMessageFailsWholeBeforeAnyIsSent() {
        var machine = connectedPublisher()
        let call = ConnectionCommand<PublisherStateMachine.Command>.role(
            .publish(
                requestID: 1,
                messages: [
                    OutboundMessage(queue: "q", body: Array("fine".utf8)),
                    OutboundMessage(queue: "q", body: [], properties: MessageProperties(messageID: String(repeating: "x", count: 300))),
                ]))
        #expect(machine.commandReceived(call).summary == ["failPublish(1, unencodable)"])
        #expect(machine.commandReceived(publish(2, "next")).summary == ["sendPublish(next)"], "others are not affected")
    }

    @Test func nothingIsSentWhileTheBrokerBlocksTheConnection() {
        var machine = connectedPublisher()
        #expect(machine.frameRead(.blocked(reason: "low on memory")).summary == ["reportBlocked(low on memory)"])
        #expect(machine.frameRead(.blocked(reason: "low on memory")).summary == [], "reported once")
        #expect(machine.commandReceived(publish(1, "a")).summary == [], "held while blocked")
        #expect(machine.frameRead(.unblocked).summary == ["reportUnblocked(the broker lifted its alarm)", "sendPublish(a)"])
        #expect(machine.frameRead(.unblocked).summary == [], "reported once")
    }

    @Test func aBlockedConnectionThatIsLostIsNoLongerBlocked() {
        var machine = connectedPublisher()
        _ = machine.frameRead(.blocked(reason: "disk"))
        #expect(
            machine.connectionLost(MessagingError(.connectionLost, "gone")).summary == [
                "abandonConnection(connectionLost, reconnecting)", "reportUnblocked(the connection was lost)",
                "backOff(0.1 seconds)",
            ])
        #expect(!machine.isBlocked)
    }

    @Test func theDrainTimeoutIsHalfTheShutdownTimeout() {
        var machine = ConnectionStateMachine(
            role: PublisherStateMachine(confirmWindow: 8), declaring: [], backoff: .retry,
            shutdownTimeout: .seconds(2), jitter: { 1 })
        _ = machine.start()
        _ = machine.connected(consumerTag: nil)
        _ = machine.commandReceived(publish(1, "a"))
        _ = machine.publishSent()
        #expect(machine.shutdownAsked().summary == ["startDrainTimer(1.0 seconds)"])
    }

    @Test func aBlockedConsumerIsReportedAndKeepsDelivering() {
        var machine = ConnectionStateMachine(
            role: ConsumerStateMachine(queue: "q", prefetch: 1), declaring: [], backoff: .retry, jitter: { 1 })
        _ = machine.start()
        _ = machine.connected(consumerTag: "c")
        #expect(machine.frameRead(.blocked(reason: "r")).summary == ["reportBlocked(r)"])
        let delivery = IncomingFrame.deliver(deliveryTag: 1, redelivered: false, body: [1], properties: MessageProperties())
        #expect(machine.frameRead(delivery).summary.count == 1)
    }

    private func connectedPublisher() -> ConnectionStateMachine<PublisherStateMachine> {
        var machine = ConnectionStateMachine(
            role: PublisherStateMachine(confirmWindow: 8), declaring: [], backoff: Backoff(
                initial: .milliseconds(100), maximum: .seconds(1)), jitter: { 1 })
        _ = machine.start()
        _ = machine.connected(consumerTag: nil)
        return machine
    }

    private func publish(_ requestID: UInt64, _ body: String) -> ConnectionCommand<PublisherStateMachine.Command> {
        .role(.publish(requestID: requestID, messages: [OutboundMessage(queue: "q", body: Array(body.utf8))]))
    }
}
