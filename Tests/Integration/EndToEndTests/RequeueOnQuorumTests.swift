import BrokerTestSupport
import Common
import Foundation
import Logging
import Messaging
import TestSupport
import Testing

/// `requeue-dead-letters` on a quorum deployment: it declares the queues as the services do (`AMQP_QUEUE_TYPE`), and
/// the dead-letter queue's delivery count does not travel with the copy.
struct RequeueOnQuorumTests {
    @Test func movesDeadLettersBetweenQuorumQueuesWithoutTheirDeliveryCount() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("requeue-quorum")
        var quorum = try BrokerConfiguration(url: url)
        quorum.queueType = .quorum

        // The deployment's queues, as services on AMQP_QUEUE_TYPE=quorum declared them, with dead letters waiting.
        try await publishMessages(
            (0..<3).map {
                OutboundMessage(
                    queue: "queue_order.dead", body: Array("m\($0)".utf8),
                    properties: MessageProperties(
                        messageID: "m\($0)", headers: ["x-error": "poison", "x-original-queue": "queue_order"]))
            }, brokerURL: url, queueType: .quorum, alsoDeclaring: ["queue_order"])
        // Someone took them from the dead-letter queue before and let them go back (an interrupted run of the tool):
        // the broker now counts one return for each, which it shows in `x-delivery-count` on the next delivery.
        try await returnUnsettled(3, from: "queue_order.dead", configuration: quorum)

        let outcome = try await runProcess(
            ["\(ServiceProcess.binDirectory)/requeue-dead-letters", "--queue", "queue_order"],
            environment: ["RABBITMQ_URL": url, "AMQP_QUEUE_TYPE": "quorum"])
        #expect(outcome.status == 0, "\(outcome.output)\n\(outcome.errors)")
        #expect(outcome.output.contains("moved 3 message(s) from queue_order.dead to queue_order"), "\(outcome.output)")

        let moved = try await takeMessages(3, from: "queue_order", brokerURL: url, queueType: .quorum)
        #expect(Set(moved.map(\.properties.messageID)) == ["m0", "m1", "m2"])
        for delivery in moved {
            // A consumer on a quorum queue reads prior attempts from this header: a count carried over from the
            // dead-letter queue would count against the poison bound before the message was ever tried again.
            #expect(delivery.properties.headers[HeaderName.deliveryCount] == nil, "\(delivery.properties.headers)")
            #expect(delivery.properties.headers[HeaderName.error] == nil)
        }
        let vhost = String(url.split(separator: "/").last ?? "")
        let listed = try await broker.ctl(["list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "type"])
        let types = listed.split(separator: "\n").map { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }) }
        #expect(Set(types.filter { $0.count == 2 }.map { "\($0[0]) \($0[1])" }) == [
            "queue_order quorum", "queue_order.dead quorum",
        ], "\(listed)")
    }

    @Test func onQuorumQueuesWithoutTheSettingItStopsWithTheConflictAndMovesNothing() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("requeue-quorum-conflict")
        try await publishMessages(
            [OutboundMessage(queue: "queue_order.dead", body: [1])], brokerURL: url, queueType: .quorum,
            alsoDeclaring: ["queue_order"])
        let outcome = try await runProcess(
            ["\(ServiceProcess.binDirectory)/requeue-dead-letters", "--queue", "queue_order"],
            environment: ["RABBITMQ_URL": url])
        #expect(outcome.status != 0)
        #expect(outcome.errors.contains("AMQP_QUEUE_TYPE"), "\(outcome.output)\n\(outcome.errors)")
        // Nothing moved: the message is still there (a quorum queue's count in rabbitmqctl lags by a few seconds).
        try await eventually(timeout: .seconds(30), "the dead letter stays where it was") {
            try await broker.messageCount(queue: "queue_order.dead", virtualHostURL: url) == 1
        }
        #expect(try await broker.messageCount(queue: "queue_order", virtualHostURL: url) == 0)
    }

    @Test func aRunningSystemOnQuorumQueuesTakesRawMessagesFromItsHelpers() async throws {
        // The helpers declare as the services do: on a quorum system a classic declaration would meet a 406.
        let system = try await RunningSystem.start("quorum-helpers", environment: ["AMQP_QUEUE_TYPE": "quorum"])
        try await withCleanup({ await system.stopAll() }) {
            try await system.publish([
                OutboundMessage(
                    queue: "queue_order", body: Array("not json".utf8), properties: MessageProperties(messageID: "raw"))
            ])
            let dead = try await system.take(1, from: "queue_order.dead", timeout: .seconds(30))
            #expect(dead.map(\.properties.messageID) == ["raw"], "\(system.logs())")
            #expect(dead.first?.properties.headers[HeaderName.originalQueue] == "queue_order")
        }
    }

    /// Takes `count` messages from `queue` without settling them and closes, so the broker takes them back.
    private func returnUnsettled(_ count: Int, from queue: String, configuration: BrokerConfiguration) async throws {
        let consumer = Consumer(
            configuration: configuration, queue: queue, prefetch: UInt16(count), logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.run() }
            var held = 0
            for await _ in consumer.deliveries {
                held += 1
                if held == count { break }
            }
            #expect(held == count)
            group.cancelAll()
        }
    }
}
