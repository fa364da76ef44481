import BrokerTestSupport
import Common
import EventCodec
import Foundation
import HTTPServer
import Logging
import Messaging
import ServiceRuntime
import SQLiteStorage
import TestSupport
import Testing

@testable import OrderService

/// A message that keeps failing to apply (not one that fails to parse) is retried a bounded number of times,
/// then moved to `queue_order.dead` with the reason, the attempt count and the time; after the fix it can be
/// moved back and is applied.
@Suite(.serialized)
struct PoisonMessageTests {
    @Test func poisonIsDeadLetteredAfterBoundedAttemptsAndCanBeRequeuedAfterTheFix() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("poison")
        let directory = try temporaryDirectory("poison")
        let database = "\(directory)/orders.sqlite"
        var configuration = OrderServiceConfiguration(
            http: HTTPServerConfiguration(host: "127.0.0.1", port: 0), databasePath: database,
            broker: try BrokerConfiguration(url: url))
        configuration.maxAttempts = 3
        let app = try OrderServiceApp(configuration: configuration, logger: Logger(label: "poison-test"))
        let running = InProcessService(app.services.inStartOrder)
        let port = try await app.listeningPort()

        // The fault: the database refuses this one user's row, whatever the order service does.
        let admin = try SQLiteConnection(path: database)
        try admin.execute(
            """
            CREATE TRIGGER poison BEFORE INSERT ON user_snapshots WHEN NEW.user_id = 'poison'
            BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;
            """)

        let events = (["poison"] + (0..<10).map { "fine-\($0)" }).map { id in
            UserEvent(
                kind: .created, userID: id, name: "N \(id)", email: "\(id)@example.com", eventID: "ev-\(id)",
                version: 1, occurredAt: Date())
        }
        let publisher = Publisher(
            configuration: try BrokerConfiguration(url: url), declaring: [QueueName.order], logger: Logger(label: "t"))
        let publishing = Task { try await publisher.run() }
        try await publisher.publish(
            events.map { OutboundMessage(queue: QueueName.order, body: $0.encodedBody()) })
        publishing.cancel()

        let dead = QueueName.deadLetter(for: QueueName.order)
        try await eventually("the poison message is dead-lettered") {
            try await broker.messageCount(queue: dead, virtualHostURL: url) == 1
        }
        for index in 0..<10 {
            let status = try await httpRequest("GET", port: port, path: "/snapshots/users/fine-\(index)").status
            #expect(status == 200, "the other messages were applied")
        }
        try await eventually("queue_order drained") {
            try await broker.messageCount(queue: QueueName.order, virtualHostURL: url) == 0
        }

        let headers = try await peekHeaders(queue: dead, url: url)
        #expect(headers[HeaderName.attempts] == "3")
        #expect(headers[HeaderName.error]?.contains("poisoned row") == true, "\(headers)")
        #expect(headers[HeaderName.originalQueue] == QueueName.order)
        #expect(headers[HeaderName.failedAt].flatMap(Timestamp.parse) != nil)

        // The fix, then the documented way back.
        try admin.execute("DROP TRIGGER poison")
        admin.close()
        let requeue = ServiceProcess(
            "requeue-dead-letters", arguments: ["--queue", QueueName.order, "--rabbitmq-url", url], environment: [:],
            logDirectory: directory)
        try requeue.start()
        let status = try await requeue.stop(signal: 0, timeout: .seconds(30))
        #expect(status == 0, "\(requeue.logTail())")
        #expect(requeue.log().contains("moved 1 message(s) from queue_order.dead to queue_order"), "\(requeue.logTail())")
        try await eventually("the requeued message is applied") {
            try await httpRequest("GET", port: port, path: "/snapshots/users/poison").status == 200
        }
        #expect(try await broker.messageCount(queue: dead, virtualHostURL: url) == 0)
        await running.stop()
    }

    /// Reads the first message's headers and puts it back.
    private func peekHeaders(queue: String, url: String) async throws -> [String: String] {
        let consumer = Consumer(
            configuration: try BrokerConfiguration(url: url), queue: queue, prefetch: 1, logger: Logger(label: "peek"))
        let runner = Task { try await consumer.run() }
        var headers: [String: String] = [:]
        for await delivery in consumer.deliveries {
            headers = delivery.properties.headers
            consumer.reject(delivery, requeue: true)
            break
        }
        runner.cancel()
        _ = await runner.result
        return headers
    }
}
