import BrokerTestSupport
import Common
import EventCodec
import Foundation
import Logging
import Messaging
import Testing
import TestSupport

/// The notification service as a process, with routing tables from files.
@Suite(.serialized)
struct RoutingTests {
    private struct Router {
        let url: String
        let directory: String
        let tablePath: String
        let process: ServiceProcess
        let port: Int

        static func start(table: String) async throws -> Router {
            let broker = try await TestBroker.shared()
            let url = try await broker.makeVirtualHost("routing")
            let directory = try temporaryDirectory("routing")
            let tablePath = "\(directory)/routes.yaml"
            try table.write(toFile: tablePath, atomically: true, encoding: .utf8)
            let port = try freePort()
            let process = ServiceProcess(
                "notification-service", arguments: ["--port", "\(port)"],
                environment: ["RABBITMQ_URL": url, "ROUTING_TABLE": tablePath, "LOG_LEVEL": "info"],
                logDirectory: directory)
            try process.start()
            let router = Router(url: url, directory: directory, tablePath: tablePath, process: process, port: port)
            try await eventually(timeout: .seconds(30), "notification-service ready\n\(process.logTail())") {
                (try? await httpRequest("GET", port: port, path: "/readyz").status) == 200
            }
            return router
        }

        func count(_ queue: String) async throws -> Int? {
            try await TestBroker.shared().messageCount(queue: queue, virtualHostURL: url)
        }
    }

    private static func created(_ index: Int) -> OutboundMessage {
        let event = UserEvent(
            kind: .created, userID: "r-\(index)", name: "R \(index)", email: "r\(index)@example.com",
            eventID: "route-\(index)", version: 1, occurredAt: Date())
        return OutboundMessage(
            queue: QueueName.dispatch, body: event.encodedBody(), properties: MessageProperties(messageID: event.eventID))
    }

    private static func publisher(_ url: String) throws -> Publisher {
        Publisher(
            configuration: try BrokerConfiguration(url: url), declaring: [QueueName.dispatch],
            logger: Logger(label: "routing-test"))
    }

    @Test func severalDestinationsAndADefaultRoute() async throws {
        let router = try await Router.start(
            table: """
                routes:
                  user_created: [dest_a, dest_b]
                default: [dest_other]
                """)
        try await withCleanup({ try? await router.process.stop() }) {
            let publisher = try Self.publisher(router.url)
            let task = Task { try await publisher.run() }
            defer { task.cancel() }
            try await publisher.publish((0..<50).map(Self.created))
            try await publisher.publish(
                (0..<20).map { OutboundMessage(queue: QueueName.dispatch, body: Array(#"{"event":"order_placed","n":\#($0)}"#.utf8)) })

            try await eventually("all forwarded\n\(router.process.logTail())") {
                try await router.count(QueueName.dispatch) == 0
            }
            #expect(try await router.count("dest_a") == 50)
            #expect(try await router.count("dest_b") == 50)
            #expect(try await router.count("dest_other") == 20)
            #expect(try await router.count(QueueName.unrouted) == 0)
        }
    }

    @Test func eventWithoutRouteMovesToUnrouted() async throws {
        let router = try await Router.start(table: "routes:\n  user_created: [queue_order]\n")
        try await withCleanup({ try? await router.process.stop() }) {
            let publisher = try Self.publisher(router.url)
            let task = Task { try await publisher.run() }
            defer { task.cancel() }
            try await publisher.publish([
                OutboundMessage(queue: QueueName.dispatch, body: Array(#"{"event":"invoice_paid","id":7}"#.utf8))
            ])
            try await eventually("moved to \(QueueName.unrouted)") { try await router.count(QueueName.unrouted) == 1 }
            #expect(try await router.count(QueueName.order) == 0)
            #expect(try await router.count(QueueName.deadLetter(for: QueueName.dispatch)) == 0)
        }
    }

    @Test func sighupReloadsTheTableUnderASteadyFlowWithNothingLostOrDuplicated() async throws {
        let router = try await Router.start(table: "routes:\n  user_created: [steady_one]\n")
        try await withCleanup({ try? await router.process.stop() }) {
            let publisher = try Self.publisher(router.url)
            let task = Task { try await publisher.run() }
            defer { task.cancel() }

            let total = 3_000
            let batch = 25
            for start in stride(from: 0, to: total, by: batch) {
                try await publisher.publish((start..<start + batch).map(Self.created))
                if start == total / 3 {
                    try "routes:\n  user_created: [steady_one, steady_two]\n".write(
                        toFile: router.tablePath, atomically: true, encoding: .utf8)
                    router.process.send(SIGHUP)
                }
                if start == 2 * total / 3 {
                    try "routes:\n  user_created: []\n".write(toFile: router.tablePath, atomically: true, encoding: .utf8)
                    router.process.send(SIGHUP)
                }
                try await Task.sleep(for: .milliseconds(2))
            }

            try await eventually(timeout: .seconds(30), "all forwarded\n\(router.process.logTail())") {
                try await router.count(QueueName.dispatch) == 0
            }
            let first = try await router.count("steady_one")
            #expect(first == total, "steady_one holds \(first.map(String.init) ?? "nothing"), not \(total)")
            let second = try await router.count("steady_two") ?? 0
            #expect(second > 0 && second < total, "the second destination got the messages after the reload: \(second)")
            #expect(router.process.isRunning, "SIGHUP reloads, it does not stop the service")
            let log = router.process.log()
            #expect(log.contains("routing table reloaded"))
            #expect(log.contains("routing table reload refused"))

            // The first destination got each message exactly once.
            if try await router.count("steady_one") == total {
                let messages = try await drain("steady_one", url: router.url, count: total)
                #expect(Set(messages).count == total)
            }
        }
    }

    private func drain(_ queue: String, url: String, count: Int) async throws -> [String] {
        let consumer = Consumer(
            configuration: try BrokerConfiguration(url: url), queue: queue, prefetch: 500,
            logger: Logger(label: "drain"))
        let runner = Task { try await consumer.run() }
        defer { runner.cancel() }
        var ids: [String] = []
        for await delivery in consumer.deliveries {
            ids.append(delivery.properties.messageID ?? "")
            consumer.ack(delivery, multiple: true)
            if ids.count == count { break }
        }
        return ids
    }
}
