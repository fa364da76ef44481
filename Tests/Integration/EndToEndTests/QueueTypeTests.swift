import BrokerTestSupport
import Foundation
import Logging
import Messaging
import TestSupport
import Testing

/// `AMQP_QUEUE_TYPE`: the real executables on quorum queues, and stopping with one line on a queue of the other
/// type. Each test has a virtual host of its own on the test node.
struct QueueTypeTests {
    @Test func theServicesDeclareEveryQueueAsQuorumAndWorkOnThem() async throws {
        let system = try await RunningSystem.start("quorum", environment: ["AMQP_QUEUE_TYPE": "quorum"])
        try await withCleanup({ await system.stopAll() }) {
            let created = try await system.createUser(name: "Quinn", email: "quinn@example.com")
            #expect(created.status == 201)
            try await eventually(timeout: .seconds(30), "the snapshot arrives through quorum queues\n\(system.logs())") {
                try system.snapshots().values.contains { $0.email == "quinn@example.com" }
            }
            let broker = try await TestBroker.shared()
            let vhost = String(system.brokerURL.split(separator: "/").last ?? "")
            let listed = try await broker.ctl(["list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "type"])
            var types: [String: String] = [:]
            for line in listed.split(separator: "\n") {
                let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).map(String.init)
                if fields.count == 2 { types[fields[0]] = fields[1] }
            }
            for queue in ["queue_dispatch", "queue_order", "queue_dispatch.dead", "queue_order.dead", "queue_unrouted"] {
                #expect(types[queue] == "quorum", "\(queue): \(types)")
            }
        }
    }

    @Test func aServiceMeetingAClassicQueueStopsAtStartWithOneLine() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("conflict")
        // The original system's queue: classic, durable, no arguments, holding an event.
        let creator = Publisher(
            configuration: try BrokerConfiguration(url: url), declaring: ["queue_dispatch"], logger: Logger(label: "t"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await creator.run() }
            try await creator.publish([OutboundMessage(queue: "queue_dispatch", body: Array("{}".utf8))])
            group.cancelAll()
        }

        let directory = try temporaryDirectory("queue-conflict")
        let service = ServiceProcess(
            "user-service", arguments: ["--port", "\(try freePort())"],
            environment: [
                "RABBITMQ_URL": url, "AMQP_QUEUE_TYPE": "quorum", "USER_DB_URL": "\(directory)/users.sqlite",
                "LOG_LEVEL": "info",
            ],
            logDirectory: directory)
        try service.start()
        try await eventually(timeout: .seconds(30), "the service stops by itself\n\(service.logTail())") {
            !service.isRunning
        }
        let status = try await service.stop()
        #expect(status == 78, "\(service.logTail())")
        let lines = service.log().split(separator: "\n")
        let conflicts = lines.filter { $0.contains("exists as a classic queue") }
        #expect(conflicts.count == 1, "one line: \(service.logTail())")
        #expect(
            lines.last?.hasPrefix(
                "error: queue 'queue_dispatch' exists as a classic queue but this service declares it as a quorum queue")
                == true, "\(service.logTail())")
        #expect(!lines.contains { $0.contains("attempt 2") }, "not retried: \(service.logTail())")
        // Nothing was deleted: the queue keeps its type and its message.
        #expect(try await broker.messageCount(queue: "queue_dispatch", virtualHostURL: url) == 1)
    }
}
