import BrokerTestSupport
import Foundation
import Logging
import Messaging
import TestSupport
import Testing

/// Messages AMQP cannot carry fail their own publish call before anything is sent (the connection stays, the next
/// message flows at once), and a broker alarm blocks the publisher without keeping it from stopping in time.
struct UnencodableAndBlockedTests {
    private static let wide = String(repeating: "é", count: 150)  // 300 bytes

    private static let unencodable: [(String, OutboundMessage)] = {
        func message(_ properties: MessageProperties, queue: String = "q") -> OutboundMessage {
            OutboundMessage(queue: queue, body: Array("{}".utf8), properties: properties)
        }
        return [
            ("message_id", message(MessageProperties(messageID: wide))),
            ("type", message(MessageProperties(type: wide))),
            ("app_id", message(MessageProperties(appID: wide))),
            ("content_type", message(MessageProperties(contentType: wide))),
            ("header key", message(MessageProperties(headers: [wide: "v"]))),
            ("140 kB header value", message(MessageProperties(headers: ["x-error": String(repeating: "x", count: 140_000)]))),
            ("huge header table", message(MessageProperties(
                headers: Dictionary(uniqueKeysWithValues: (0..<12_000).map { ("header-\($0)", "value") })))),
            ("routing key", message(MessageProperties(), queue: String(repeating: "q", count: 300))),
        ]
    }()

    @Test func unencodableMessagesFailTheirCallAndTheConnectionStays() async throws {
        let broker = try await TestBroker.shared()
        let queue = uniqueQueueName("unencodable")
        let name = uniqueQueueName("pub-unencodable")
        let publisher = Publisher(configuration: try configuration(broker, name), declaring: [queue], logger: logger)
        try await withServices(publisher) {
            try await publisher.publish([OutboundMessage(queue: queue, body: Array("first".utf8))])
            let connection = try await broker.connectionIDs(named: name)
            #expect(connection.count == 1)
            for (field, template) in Self.unencodable {
                var bad = template
                if bad.queue == "q" { bad.queue = queue }
                let error = await #expect(throws: MessagingError.self, "\(field)") {
                    try await publisher.publish([OutboundMessage(queue: queue, body: Array("kept".utf8)), bad])
                }
                #expect(error?.code == .unencodable, "\(field): \(String(describing: error))")
                // The next message is confirmed at once, on the same connection.
                try await publisher.publish([OutboundMessage(queue: queue, body: Array("next".utf8))])
                #expect(try await broker.connectionIDs(named: name) == connection, "\(field): reconnected")
            }
            #expect(publisher.isConnected)
            // Nothing of the refused calls was sent, not even their encodable first message.
            try await eventually("first and one per case") {
                try await broker.messageCount(queue: queue) == 1 + Self.unencodable.count
            }
        }
    }

    @Test func theNegotiatedFrameSizeIsWhatCounts() async throws {
        let broker = try await TestBroker.startPrivate(extraConfiguration: ["frame_max = 8192"])
        let queue = uniqueQueueName("small-frames")
        let name = uniqueQueueName("pub-small-frames")
        let publisher = Publisher(configuration: try configuration(broker, name), declaring: [queue], logger: logger)
        try await withServices(publisher) {
            // 10 kB of headers: fine for our 128 kB frames, too much for the 8 kB this broker agreed to.
            let large = MessageProperties(headers: ["x-note": String(repeating: "n", count: 10_000)])
            let error = await #expect(throws: MessagingError.self) {
                try await publisher.publish([OutboundMessage(queue: queue, body: [1], properties: large)])
            }
            #expect(error?.code == .unencodable)
            try await publisher.publish([OutboundMessage(queue: queue, body: Array(repeating: 7, count: 100_000))])
            #expect(try await broker.connectionIDs(named: name).count == 1)
            #expect(try await broker.messageCount(queue: queue) == 1)
        }
        try await broker.stop()
    }

    @Test func aBlockedPublisherSaysSoWaitsAndStillStopsWithinItsShutdownTimeout() async throws {
        let broker = try await TestBroker.startPrivate()
        let queue = uniqueQueueName("alarm")
        var blockedConfiguration = try configuration(broker, uniqueQueueName("pub-alarm"))
        blockedConfiguration.shutdownTimeout = .seconds(2)
        let publisher = Publisher(configuration: blockedConfiguration, declaring: [queue], logger: logger)
        let run = Task { try await publisher.run() }
        try await publisher.publish([OutboundMessage(queue: queue, body: Array("before".utf8))])

        _ = try await broker.ctl(["set_vm_memory_high_watermark", "0.0000001"])
        let during = Task { try await publisher.publish([OutboundMessage(queue: queue, body: Array("during".utf8))]) }
        try await eventually(timeout: .seconds(20), "the publisher reports the block") { publisher.isBlocked }
        #expect(BrokerFlowControl.blockedConnections >= 1)

        let stopping = ContinuousClock.now
        run.cancel()
        _ = try? await run.value
        let took = ContinuousClock.now - stopping
        // About 1 s (the drain timeout) when run alone; the margin is for a loaded machine. Before, the drain took
        // 5 s and each close RPC the blocked broker never answers 10 s more.
        #expect(took < .seconds(6), "stopped in \(took) with a shutdown timeout of 2 s")
        await #expect(throws: (any Error).self) { try await during.value }
        #expect(!publisher.isBlocked)

        // After the alarm, a new publisher is not blocked and its messages are confirmed.
        _ = try await broker.ctl(["set_vm_memory_high_watermark", "0.4"])
        let after = Publisher(
            configuration: try configuration(broker, uniqueQueueName("pub-after")), declaring: [queue], logger: logger)
        try await withServices(after) {
            try await after.publish([OutboundMessage(queue: queue, body: Array("after".utf8))])
            #expect(!after.isBlocked)
        }
        try await broker.stop()
    }
}

private let logger: Logger = {
    var logger = Logger(label: "UnencodableAndBlockedTests")
    logger.logLevel = .notice
    return logger
}()

private func configuration(_ broker: TestBroker, _ name: String) throws -> BrokerConfiguration {
    var configuration = try BrokerConfiguration(url: broker.url)
    configuration.connectionName = name
    configuration.reconnectDelay = .milliseconds(50) ... .seconds(1)
    return configuration
}
