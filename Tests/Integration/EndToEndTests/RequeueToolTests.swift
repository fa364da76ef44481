import BrokerTestSupport
import Foundation
import Logging
import Messaging
import TestSupport
import Testing

/// `requeue-dead-letters` run as a process: `--queue` decides where messages go (never a header), a `.dead` queue is
/// refused, each message moves once, and it stops on the broker's count.
struct RequeueToolTests {
    @Test func headersNamingAnUndeclaredQueueOrTheDeadQueueItselfAreNotFollowed() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("requeue-headers")
        let queue = "queue_order"
        let messages = ["nowhere-\(UUID().uuidString)", "queue_order.dead", "queue_order", ""].enumerated().map {
            index, original in
            OutboundMessage(
                queue: "queue_order.dead", body: Array("m\(index)".utf8),
                properties: MessageProperties(
                    messageID: "m\(index)",
                    headers: ["x-error": "poison", "x-original-queue": original, "x-attempts": "5", "traceparent": "t"]))
        }
        try await publish(messages, url: url)

        let outcome = try await requeue(["--queue", queue], url: url)
        #expect(outcome.status == 0, "\(outcome.errors)")
        #expect(outcome.output.contains("moved 4 message(s) from queue_order.dead to queue_order"), "\(outcome.output)")
        #expect(outcome.output.contains("3 of them named another queue"), "\(outcome.output)")
        #expect(outcome.output.contains("0 message(s) left in queue_order.dead"), "\(outcome.output)")

        let moved = try await takeMessages(4, from: queue, brokerURL: url)
        #expect(Set(moved.map(\.properties.messageID)) == ["m0", "m1", "m2", "m3"])
        for delivery in moved {
            #expect(delivery.properties.headers == ["traceparent": "t"], "dead-letter headers removed")
        }
        #expect(try await broker.messageCount(queue: "queue_order.dead", virtualHostURL: url) == 0)
    }

    @Test func runningItTwiceMovesEachMessageOnce() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("requeue-twice")
        try await publish(
            (0..<50).map { OutboundMessage(queue: "queue_dispatch.dead", body: Array("\($0)".utf8)) }, url: url)
        async let first = requeue(["--queue", "queue_dispatch"], url: url)
        async let second = requeue(["--queue", "queue_dispatch"], url: url)
        let outcomes = try await [first, second]
        for outcome in outcomes { #expect(outcome.status == 0, "\(outcome.errors)") }
        let again = try await requeue(["--queue", "queue_dispatch"], url: url)
        #expect(again.output.contains("moved 0 message(s)"), "\(again.output)")
        #expect(try await broker.messageCount(queue: "queue_dispatch", virtualHostURL: url) == 50)
        #expect(try await broker.messageCount(queue: "queue_dispatch.dead", virtualHostURL: url) == 0)
    }

    @Test func aDeadLetterQueueAsTheDestinationIsRefused() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("requeue-refused")
        try await publish([OutboundMessage(queue: "queue_order.dead", body: [1])], url: url)
        let outcome = try await requeue(["--queue", "queue_order.dead"], url: url)
        #expect(outcome.status != 0)
        #expect(outcome.errors.contains("dead-letter queue"), "\(outcome.errors)")
        #expect(try await broker.messageCount(queue: "queue_order.dead", virtualHostURL: url) == 1)
    }

    @Test func aConfirmSlowerThanAnyIdleCheckMovesEachMessageOnce() async throws {
        // A memory alarm holds every publish unconfirmed; the tool must wait for the confirm, not stop and leave the
        // message in both queues.
        let broker = try await TestBroker.startPrivate()
        let url = broker.url
        try await publish((0..<3).map { OutboundMessage(queue: "queue_order.dead", body: [UInt8($0)]) }, url: url)
        _ = try await broker.ctl(["set_vm_memory_high_watermark", "0.0000001"])
        let running = Task { try await requeue(["--queue", "queue_order"], url: url) }
        try await Task.sleep(for: .seconds(3))  // the alarm lasts longer than an idle timer would wait: on purpose
        _ = try await broker.ctl(["set_vm_memory_high_watermark", "0.4"])
        let outcome = try await running.value
        #expect(outcome.status == 0, "\(outcome.errors)")
        #expect(outcome.output.contains("moved 3 message(s)"), "\(outcome.output)")
        #expect(try await broker.messageCount(queue: "queue_order") == 3)
        #expect(try await broker.messageCount(queue: "queue_order.dead") == 0)
        try await broker.stop()
    }

    private func requeue(_ arguments: [String], url: String) async throws -> ProcessOutcome {
        try await runProcess(
            ["\(ServiceProcess.binDirectory)/requeue-dead-letters"] + arguments, environment: ["RABBITMQ_URL": url])
    }

    private func publish(_ messages: [OutboundMessage], url: String) async throws {
        try await publishMessages(messages, brokerURL: url)
    }
}
