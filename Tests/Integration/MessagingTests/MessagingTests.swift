import BrokerTestSupport
import Foundation
import Logging
import Messaging
import TestSupport
import Testing

/// Publisher and Consumer against the real broker from ``TestBroker``; every test uses its own queues and its own
/// connection names, so tests run in parallel and a test that closes connections closes only its own.
struct MessagingTests {
    @Test func confirmedPublishesArriveOnceWithTheirProperties() async throws {
        let broker = try await TestBroker.shared()
        let queue = uniqueQueueName("roundtrip")
        let publisher = Publisher(configuration: try configuration(broker, "pub"), declaring: [queue], logger: logger)
        let consumer = Consumer(configuration: try configuration(broker, "con"), queue: queue, logger: logger)
        let timestamp: UInt64 = 1_790_000_000

        func message(_ index: Int) -> OutboundMessage {
            OutboundMessage(
                queue: queue, body: Array("{\"index\":\(index)}".utf8),
                properties: MessageProperties(
                    messageID: "m-\(index)", type: "user_created", timestamp: timestamp, appID: "messaging-tests",
                    headers: ["traceparent": "00-\(index)-01", "x-index": "\(index)"]))
        }

        try await withServices(publisher, consumer) {
            // 20 concurrent callers, 50 messages each: they share the connection and its confirm window.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<20 {
                    group.addTask {
                        try await publisher.publish((0..<50).map { message(caller * 50 + $0) })
                    }
                }
                try await group.waitForAll()
            }
            // Acked as they arrive: with prefetch 256 the broker sends no more until earlier ones are acked.
            let deliveries = try await collect(1000, from: consumer, acking: true)
            var seen: Set<String> = []
            for delivery in deliveries {
                let id = try #require(delivery.properties.messageID)
                let index = try #require(Int(id.dropFirst(2)))
                #expect(seen.insert(id).inserted, "duplicate \(id)")
                #expect(delivery.properties == message(index).properties)
                #expect(delivery.body == message(index).body)
                #expect(delivery.queue == queue)
                #expect(!delivery.redelivered)
            }
            #expect(seen.count == 1000)
            try await eventually("all messages acked") { try await broker.messageCount(queue: queue) == 0 }
        }
    }

    @Test func unroutablePublishFailsAndThePublisherKeepsWorking() async throws {
        let broker = try await TestBroker.shared()
        let queue = uniqueQueueName("routable")
        let missing = uniqueQueueName("missing")
        let publisher = Publisher(configuration: try configuration(broker, "pub"), declaring: [queue], logger: logger)
        try await withServices(publisher) {
            let error = await #expect(throws: MessagingError.self) {
                try await publisher.publish([OutboundMessage(queue: missing, body: [1])])
            }
            #expect(error?.code == .unroutable)

            // One unroutable message fails its whole call, routable ones in it are still delivered.
            let mixed = await #expect(throws: MessagingError.self) {
                try await publisher.publish([
                    OutboundMessage(queue: queue, body: [2]), OutboundMessage(queue: missing, body: [3]),
                ])
            }
            #expect(mixed?.code == .unroutable)

            try await publisher.publish([OutboundMessage(queue: queue, body: [4])])
            #expect(publisher.isConnected)
            try await eventually("two messages routed") { try await broker.messageCount(queue: queue) == 2 }
            #expect(try await broker.messageCount(queue: missing) == nil)
        }
    }

    @Test func queuesDeclaredLaterAreRoutableAndSurviveReconnects() async throws {
        let broker = try await TestBroker.shared()
        let later = uniqueQueueName("later")
        let publisher = Publisher(
            configuration: try configuration(broker, "declare-later"), declaring: [], logger: logger)
        try await withServices(publisher) {
            var refused: MessagingError?
            do {
                try await publisher.publish([OutboundMessage(queue: later, body: [1])])
            } catch let error as MessagingError {
                refused = error
            }
            #expect(refused?.code == .unroutable)

            try await publisher.declare([later])
            try await publisher.publish([OutboundMessage(queue: later, body: [2])])
            let afterDeclare = try await broker.messageCount(queue: later)
            #expect(afterDeclare == 1)

            // The broker forgets nothing here, but a reconnect must declare the added queue again: delete it first.
            _ = try await broker.ctl(["delete_queue", later])
            try await broker.closeConnections(named: "declare-later")
            try await eventually("reconnected and declared again") { try await broker.messageCount(queue: later) == 0 }
            try await publisher.publish([OutboundMessage(queue: later, body: [3])])
            let afterReconnect = try await broker.messageCount(queue: later)
            #expect(afterReconnect == 1)
        }
    }

    @Test func unackedDeliveryIsRedeliveredToTheNextConsumer() async throws {
        let broker = try await TestBroker.shared()
        let queue = uniqueQueueName("redeliver")
        let publisher = Publisher(configuration: try configuration(broker, "pub"), declaring: [queue], logger: logger)
        try await withServices(publisher) {
            try await publisher.publish([
                OutboundMessage(queue: queue, body: Array("acked".utf8)),
                OutboundMessage(queue: queue, body: Array("unacked".utf8)),
            ])
        }

        let first = Consumer(configuration: try configuration(broker, "con1"), queue: queue, logger: logger)
        try await withServices(first) {
            let deliveries = try await collect(2, from: first)
            #expect(deliveries.map(\.body) == [Array("acked".utf8), Array("unacked".utf8)])
            #expect(deliveries.allSatisfy { !$0.redelivered })
            first.ack(deliveries[0])
        }
        // The first consumer has closed: its ack was flushed, the other message went back to the queue.
        try await eventually("one message left") { try await broker.messageCount(queue: queue) == 1 }

        let second = Consumer(configuration: try configuration(broker, "con2"), queue: queue, logger: logger)
        try await withServices(second) {
            let delivery = try #require(try await collect(1, from: second).first)
            #expect(delivery.body == Array("unacked".utf8))
            #expect(delivery.redelivered)
            second.ack(delivery)
            try await eventually("queue drained") { try await broker.messageCount(queue: queue) == 0 }
        }
    }

    @Test func aConsumerStoppingMidStreamFlushesItsAcksAndLeavesTheRestQueued() async throws {
        let broker = try await TestBroker.shared()
        let queue = uniqueQueueName("stop-mid-stream")
        let publisher = Publisher(configuration: try configuration(broker, "pub"), declaring: [queue], logger: logger)
        try await withServices(publisher) {
            try await publisher.publish((0..<200).map { OutboundMessage(queue: queue, body: [UInt8($0 % 256)]) })
        }
        // Prefetch 20: when it stops, up to 20 more deliveries are on their way or waiting unacked in the stream.
        let consumer = Consumer(
            configuration: try configuration(broker, "con"), queue: queue, prefetch: 20, logger: logger)
        try await withServices(consumer) {
            _ = try await collect(50, from: consumer, acking: true)
        }
        // The 50 acks were flushed before the cancel completed; everything else went back to the queue.
        try await eventually("150 messages left") { try await broker.messageCount(queue: queue) == 150 }
    }

    @Test func ackMultipleAcksEverythingUpToTheTag() async throws {
        let broker = try await TestBroker.shared()
        let queue = uniqueQueueName("multiple")
        let publisher = Publisher(configuration: try configuration(broker, "pub"), declaring: [queue], logger: logger)
        let consumer = Consumer(configuration: try configuration(broker, "con"), queue: queue, logger: logger)
        try await withServices(publisher, consumer) {
            try await publisher.publish((0..<5).map { OutboundMessage(queue: queue, body: [UInt8($0)]) })
            let deliveries = try await collect(5, from: consumer)
            #expect(deliveries.map(\.body) == (0..<5).map { [UInt8($0)] })
            consumer.ack(deliveries[2], multiple: true)
            try await eventually("three acked") { try await broker.messageCount(queue: queue) == 2 }
            consumer.ack(deliveries[4], multiple: true)
            try await eventually("all acked") { try await broker.messageCount(queue: queue) == 0 }
        }
    }

    @Test func rejectWithRequeueRedelivers() async throws {
        let broker = try await TestBroker.shared()
        let queue = uniqueQueueName("reject")
        let publisher = Publisher(configuration: try configuration(broker, "pub"), declaring: [queue], logger: logger)
        let consumer = Consumer(configuration: try configuration(broker, "con"), queue: queue, logger: logger)
        try await withServices(publisher, consumer) {
            try await publisher.publish([OutboundMessage(queue: queue, body: [7])])
            let first = try #require(try await collect(1, from: consumer).first)
            consumer.reject(first, requeue: true)
            let again = try #require(try await collect(1, from: consumer).first)
            #expect(again.redelivered)
            consumer.reject(again, requeue: false)
            try await eventually("message dropped") { try await broker.messageCount(queue: queue) == 0 }
        }
    }

    @Test func publisherAndConsumerReconnectAfterTheBrokerClosesTheirConnections() async throws {
        let broker = try await TestBroker.shared()
        let queue = uniqueQueueName("reconnect")
        let publisherName = uniqueQueueName("pub")
        let consumerName = uniqueQueueName("con")
        let publisher = Publisher(
            configuration: try configuration(broker, publisherName), declaring: [queue], logger: logger)
        let consumer = Consumer(configuration: try configuration(broker, consumerName), queue: queue, logger: logger)
        try await withServices(publisher, consumer) {
            try await publisher.publish([OutboundMessage(queue: queue, body: Array("before".utf8))])
            let before = try #require(try await collect(1, from: consumer).first)
            consumer.ack(before)
            try await eventually("acked") { try await broker.messageCount(queue: queue) == 0 }

            try await eventually("publisher connection closed by the broker") {
                try await broker.closeConnections(named: publisherName) == 1
            }
            try await eventually("consumer connection closed by the broker") {
                try await broker.closeConnections(named: consumerName) == 1
            }

            // Publishing retries until the new connection confirms (at least once: a retry may duplicate).
            try await eventually("publish after reconnect") {
                do {
                    try await publisher.publish([OutboundMessage(queue: queue, body: Array("after".utf8))])
                    return true
                } catch let error as MessagingError where error.code == .connectionLost {
                    return false
                }
            }
            let after = try #require(try await collect(1, from: consumer).first)
            #expect(after.body == Array("after".utf8))
            consumer.ack(after, multiple: true)
            try await eventually("reconnected") { publisher.isConnected && consumer.isConnected }
        }
    }

    @Test func ackForADeliveryFromAnEarlierConnectionIsDropped() async throws {
        let broker = try await TestBroker.shared()
        let queue = uniqueQueueName("stale-ack")
        let consumerName = uniqueQueueName("con")
        let publisher = Publisher(configuration: try configuration(broker, "pub"), declaring: [queue], logger: logger)
        let consumer = Consumer(configuration: try configuration(broker, consumerName), queue: queue, logger: logger)
        try await withServices(publisher, consumer) {
            try await publisher.publish([OutboundMessage(queue: queue, body: [1])])
            let stale = try #require(try await collect(1, from: consumer).first)
            try await eventually("consumer connection closed") {
                try await broker.closeConnections(named: consumerName) == 1
            }
            let redelivered = try #require(try await collect(1, from: consumer).first)
            #expect(redelivered.redelivered)
            consumer.ack(stale)  // tag 1 of the old channel: must not ack tag 1 of the new one
            consumer.ack(redelivered)
            try await eventually("acked once") { try await broker.messageCount(queue: queue) == 0 }
        }
    }

    @Test func persistentMessagesAndConnectionsSurviveABrokerRestart() async throws {
        let broker = try await TestBroker.startPrivate()  // stopping the shared one would disturb other tests
        let queue = uniqueQueueName("restart")
        let publisher = Publisher(configuration: try configuration(broker, "pub"), declaring: [queue], logger: logger)
        let consumer = Consumer(configuration: try configuration(broker, "con"), queue: queue, logger: logger)
        try await withServices(publisher) {
            try await publisher.publish([OutboundMessage(queue: queue, body: Array("before".utf8))])
            try await broker.stop()
            try await eventually("publisher noticed") { !publisher.isConnected }
            // Issued while the broker is down: waits for the connection, then is confirmed.
            async let during: Void = publisher.publish([OutboundMessage(queue: queue, body: Array("during".utf8))])
            try await broker.start()
            try await eventually(timeout: .seconds(30), "publisher reconnected") { publisher.isConnected }
            try await during
        }
        try await withServices(consumer) {
            let deliveries = try await collect(2, from: consumer, acking: true)
            #expect(deliveries.map(\.body) == [Array("before".utf8), Array("during".utf8)])
        }
        try await broker.stop()
    }

    @Test func idleConnectionKeepsItsHeartbeat() async throws {
        let broker = try await TestBroker.shared()
        let name = uniqueQueueName("idle")
        var idle = try configuration(broker, name)
        idle.heartbeat = .seconds(1)  // the broker drops a connection after two silent intervals
        let publisher = Publisher(configuration: idle, declaring: [], logger: logger)
        try await withServices(publisher) {
            // rabbitmqctl takes seconds per call on a busy machine: the deadline leaves room for several.
            try await eventually(timeout: .seconds(60), "connected") {
                try await broker.connectionIDs(named: name).count == 1
            }
            let before = try await broker.connectionIDs(named: name)
            // Idle on purpose: only heartbeats (sent from the poll loop) keep the connection open meanwhile.
            try await Task.sleep(for: .seconds(4))
            #expect(try await broker.connectionIDs(named: name) == before, "the connection was replaced")
            #expect(publisher.isConnected)
        }
    }

    @Test func publishWaitsForTheConnectionAndCanBeCancelled() async throws {
        // Nothing listens on port 1: the publisher is never connected.
        var unreachable = try BrokerConfiguration(url: "amqp://guest:guest@127.0.0.1:1/%2f")
        unreachable.reconnectDelay = .milliseconds(50) ... .milliseconds(200)
        let publisher = Publisher(configuration: unreachable, declaring: [], logger: logger)
        try await withServices(publisher) {
            let waiting = Task { try await publisher.publish([OutboundMessage(queue: "q", body: [1])]) }
            try await Task.sleep(for: .milliseconds(300))
            #expect(!publisher.isConnected)
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
        }
        // Stopped: new publishes fail at once.
        let error = await #expect(throws: MessagingError.self) {
            try await publisher.publish([OutboundMessage(queue: "q", body: [1])])
        }
        #expect(error?.code == .closed)
    }
}

// MARK: - Helpers

private let logger: Logger = {
    var logger = Logger(label: "MessagingTests")
    logger.logLevel = .notice
    return logger
}()

private func configuration(_ broker: TestBroker, _ name: String) throws -> BrokerConfiguration {
    var configuration = try BrokerConfiguration(url: broker.url)
    configuration.connectionName = name
    configuration.reconnectDelay = .milliseconds(50) ... .seconds(1)
    return configuration
}


/// Reads exactly `count` deliveries, failing after `timeout`. The reading task is never cancelled while waiting
/// (cancelling it would end the stream); on timeout the test fails anyway.
private func collect(
    _ count: Int, from consumer: Consumer, acking: Bool = false, timeout: Duration = .seconds(20)
) async throws -> [Delivery] {
    let stream = consumer.deliveries
    return try await withThrowingTaskGroup(of: [Delivery]?.self) { group in
        group.addTask {
            var received: [Delivery] = []
            for await delivery in stream {
                received.append(delivery)
                if acking { consumer.ack(delivery) }
                if received.count == count { break }
            }
            return received
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        guard let first = try await group.next(), let received = first else {
            throw TestFailure("timed out waiting for \(count) deliveries")
        }
        group.cancelAll()
        #expect(received.count == count, "the stream ended early")
        return received
    }
}

private struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
