import BrokerTestSupport
import Common
import EventCodec
import Foundation
import Logging
import Messaging
import SQLiteStorage
import Testing
import TestSupport

/// Partial failures of the consumers' surroundings: the order database out of space, a destination queue deleted
/// under the router, a message that kills the order service each time it is taken. Real executables, a real broker,
/// real SQLite files.
@Suite(.serialized)
struct PartialFailureTests {
    /// A full disk is the database's fault, not the events': nothing is dead-lettered, `/readyz` says 503 with the
    /// reason while it lasts, and every event is applied once there is room again, without a restart.
    @Test func aFullOrderDiskPausesDeliveriesAndEverythingIsAppliedAfterwards() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("order-disk")
        let directory = try temporaryDirectory("order-disk")
        let disk = try await mountSmallDisk(in: directory)
        defer { unmountSmallDisk(disk) }

        let port = try freePort()
        let order = ServiceProcess(
            "order-service", arguments: ["--port", "\(port)"],
            environment: ["RABBITMQ_URL": url, "ORDER_DB_URL": "\(disk)/orders.sqlite", "LOG_LEVEL": "info"],
            logDirectory: directory)
        try order.start()
        try await withCleanup({ try? await order.stop() }) {
            try await eventually(timeout: .seconds(30), "order service ready\n\(order.logTail())") {
                (try? await httpRequest("GET", port: port, path: "/readyz").status) == 200
            }
            try await publish([event(userID: "before", name: "Before")], to: QueueName.order, brokerURL: url)
            try await eventually("the first event applied\n\(order.logTail())") {
                (try? await httpRequest("GET", port: port, path: "/snapshots/users/before").status) == 200
            }

            // Fill the disk, then send more than it could hold.
            let filler = try fillDisk(disk)
            let ids = (0..<60).map { "full-\($0)" }
            try await publish(
                ids.map { event(userID: $0, name: String(repeating: "n", count: EventLimits.nameBytes)) }, to: QueueName.order,
                brokerURL: url)

            try await eventually(timeout: .seconds(30), "readyz reports the database down\n\(order.logTail())") {
                let ready = try? await httpRequest("GET", port: port, path: "/readyz")
                return ready?.status == 503 && ready?.json["database"] as? String == "down"
            }
            let ready = try await httpRequest("GET", port: port, path: "/readyz")
            let reason = (ready.json["reasons"] as? [String: Any])?["database"] as? String
            #expect(reason?.isEmpty == false, "the reason: \(ready.json)")
            #expect(ready.json["broker"] as? String == "up")
            // Longer than the five attempts of the old rule would take.
            try await Task.sleep(for: .seconds(3))
            #expect(try await broker.messageCount(queue: QueueName.deadLetter(for: QueueName.order), virtualHostURL: url) == 0)
            #expect((try await httpRequest("GET", port: port, path: "/healthz")).status == 200)

            // Room again: deliveries resume by themselves.
            try FileManager.default.removeItem(atPath: filler)
            try await eventually(timeout: .seconds(60), "every event applied after the disk has room\n\(order.logTail())") {
                for id in ids where (try? await httpRequest("GET", port: port, path: "/snapshots/users/\(id)").status) != 200 {
                    return false
                }
                return true
            }
            try await eventually("readyz ready again") {
                (try? await httpRequest("GET", port: port, path: "/readyz").status) == 200
            }
            #expect(try await broker.messageCount(queue: QueueName.deadLetter(for: QueueName.order), virtualHostURL: url) == 0)
            #expect(order.log().contains("deliveries paused"))
            #expect(order.log().contains("deliveries resumed"))
        }
    }

    /// Someone deletes `queue_order` under the router: it declares the queue again and forwards; nothing goes to
    /// `queue_dispatch.dead`, nothing is lost.
    @Test func aDeletedDestinationQueueIsDeclaredAgainAndNothingIsDeadLettered() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("deleted-destination")
        let vhost = String(url.split(separator: "/").last ?? "")
        let directory = try temporaryDirectory("deleted-destination")
        let port = try freePort()
        let router = ServiceProcess(
            "notification-service", arguments: ["--port", "\(port)"],
            environment: ["RABBITMQ_URL": url, "LOG_LEVEL": "info"], logDirectory: directory)
        try router.start()
        try await withCleanup({ try? await router.stop() }) {
            try await eventually(timeout: .seconds(30), "router ready\n\(router.logTail())") {
                (try? await httpRequest("GET", port: port, path: "/readyz").status) == 200
            }
            try await eventually("queue_order declared") {
                (try? await broker.messageCount(queue: QueueName.order, virtualHostURL: url)) != nil
            }
            _ = try await broker.ctl(["delete_queue", "-p", vhost, QueueName.order])
            #expect(try await broker.messageCount(queue: QueueName.order, virtualHostURL: url) == nil)

            let ids = (0..<10).map { "redeclared-\($0)" }
            try await publish(ids.map { event(userID: $0, name: $0) }, to: QueueName.dispatch, brokerURL: url)
            // Counted without a consumer, which would declare the queue itself.
            try await eventually(timeout: .seconds(30), "the router declared queue_order and forwarded\n\(router.logTail())") {
                try await broker.messageCount(queue: QueueName.order, virtualHostURL: url) == ids.count
            }
            let forwarded = try await takeMessages(10, from: QueueName.order, brokerURL: url, timeout: .seconds(30))
            let users = Set(forwarded.compactMap { try? UserEvent.decode(body: $0.body).userID })
            #expect(users == Set(ids), "\(router.logTail())")
            #expect(try await broker.messageCount(queue: QueueName.deadLetter(for: QueueName.dispatch), virtualHostURL: url) ?? 0 == 0)
            #expect(try await broker.messageCount(queue: QueueName.dispatch, virtualHostURL: url) == 0)
            #expect(router.log().contains("declaring it again"))
        }
    }

    /// A message whose handling kills the order service every time (here: SIGKILL as soon as the service holds it,
    /// while the database is locked so that it stays in hand) is dead-lettered after `MAX_DELIVERY_ATTEMPTS` takes,
    /// across restarts: the count travels with the message.
    @Test func aMessageThatKillsTheConsumerEachTimeIsDeadLetteredAfterTheBound() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("crash-bound")
        let vhost = String(url.split(separator: "/").last ?? "")
        let directory = try temporaryDirectory("crash-bound")
        let database = "\(directory)/orders.sqlite"
        let port = try freePort()
        let order = ServiceProcess(
            "order-service", arguments: ["--port", "\(port)"],
            environment: [
                "RABBITMQ_URL": url, "ORDER_DB_URL": database, "LOG_LEVEL": "info", "MAX_DELIVERY_ATTEMPTS": "3",
                "PREFETCH": "1",
            ], logDirectory: directory)
        try order.start()
        try await withCleanup({ try? await order.stop(signal: SIGKILL) }) {
            try await eventually(timeout: .seconds(30), "order service ready\n\(order.logTail())") {
                (try? await httpRequest("GET", port: port, path: "/readyz").status) == 200
            }
            // Writers wait on this lock (WAL: the service still opens and reads), so a delivery stays unacked.
            let lock = try SQLiteConnection(path: database)
            try lock.execute("BEGIN IMMEDIATE")
            defer {
                try? lock.execute("ROLLBACK")
                lock.close()
            }
            try await publish([event(userID: "killer", name: "K")], to: QueueName.order, brokerURL: url)

            let dead = QueueName.deadLetter(for: QueueName.order)
            var kills = 0
            while try await broker.messageCount(queue: dead, virtualHostURL: url) ?? 0 == 0 {
                try #require(kills < 8, "still not dead-lettered after \(kills) kills\n\(order.logTail())")
                try await eventually(timeout: .seconds(30), "the service holds the message\n\(order.logTail())") {
                    let held = try await unacked(QueueName.order, vhost: vhost, broker: broker) == 1
                    let deadNow = try await broker.messageCount(queue: dead, virtualHostURL: url) ?? 0 > 0
                    return held || deadNow
                }
                if try await broker.messageCount(queue: dead, virtualHostURL: url) ?? 0 > 0 { break }
                try await order.stop(signal: SIGKILL)
                kills += 1
                try order.start()
                try await eventually(timeout: .seconds(30), "order service back") {
                    (try? await httpRequest("GET", port: port, path: "/healthz").status) == 200
                }
            }
            // Three takes that reached the handler; a kill that lands while a redelivery is being requeued with its count
            // (a few milliseconds) is no attempt, so there may be more kills, never fewer.
            #expect(kills >= 3, "dead-lettered after \(kills) kills\n\(order.logTail())")
            let letters = try await takeMessages(1, from: dead, brokerURL: url, timeout: .seconds(10))
            let letter = try #require(letters.first)
            #expect(letter.properties.headers["x-attempts"] == "3")
            #expect(letter.properties.headers["x-error"]?.contains("without being settled") == true)
            #expect(try UserEvent.decode(body: letter.body).userID == "killer")
            try await eventually("queue_order is empty") {
                try await broker.messageCount(queue: QueueName.order, virtualHostURL: url) == 0
            }
        }
    }
}

/// Events in the original system's shape (no `version`, no `event_id`, no properties) travel through the router to
/// the order service, and each update and the delete take effect in the order they arrive.
@Suite struct OriginalShapeTests {
    @Test func unversionedCreateUpdateDeleteAllTakeEffect() async throws {
        let system = try await RunningSystem.start("original-shape")
        try await withCleanup({ await system.stopAll() }) {
            let steps: [(body: String, check: @Sendable (TestHTTPResponse) -> Bool)] = [
                (#"{"event":"user_created","user_id":"orig-1","name":"Ann","email":"ann@example.com"}"#,
                 { $0.status == 200 && $0.json["name"] as? String == "Ann" }),
                (#"{"event":"user_updated","user_id":"orig-1","name":"Ann B","email":"ann@example.com"}"#,
                 { $0.status == 200 && $0.json["name"] as? String == "Ann B" }),
                (#"{"event":"user_updated","user_id":"orig-1","name":"Ann C","email":"annc@example.com"}"#,
                 { $0.status == 200 && $0.json["email"] as? String == "annc@example.com" }),
                (#"{"event":"user_deleted","user_id":"orig-1"}"#, { $0.status == 410 }),
            ]
            for (index, step) in steps.enumerated() {
                try await system.publish([
                    OutboundMessage(
                        queue: QueueName.dispatch, body: Array(step.body.utf8), properties: MessageProperties(contentType: nil))
                ])
                try await eventually("step \(index) took effect: \(step.body)\n\(system.logs())") {
                    let response = try await system.request("GET", port: system.orderPort, path: "/snapshots/users/orig-1")
                    return step.check(response)
                }
            }
            #expect(try await system.take(1, from: QueueName.deadLetter(for: QueueName.order), timeout: .seconds(1)).isEmpty)
        }
    }
}

/// A versioned `user_created` as the user service publishes it.
private func event(userID: String, name: String) -> OutboundMessage {
    let event = UserEvent(
        kind: .created, userID: userID, name: name, email: "\(userID)@example.com", eventID: UUID().uuidString,
        version: 1, occurredAt: Date())
    return OutboundMessage(
        queue: "", body: event.encodedBody(),
        properties: MessageProperties(messageID: event.eventID, type: event.kind.rawValue))
}

/// Publishes `messages` to `queue` with confirms.
private func publish(_ messages: [OutboundMessage], to queue: String, brokerURL: String) async throws {
    try await publishMessages(
        messages.map { OutboundMessage(queue: queue, body: $0.body, properties: $0.properties) }, brokerURL: brokerURL)
}

/// Deliveries of `queue` sent to a consumer and not yet acked.
private func unacked(_ queue: String, vhost: String, broker: TestBroker) async throws -> Int? {
    let output = try await broker.ctl(
        ["list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "messages_unacknowledged"])
    for line in output.split(separator: "\n") {
        let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
        if fields.count == 2, fields[0] == queue { return Int(fields[1]) }
    }
    return nil
}
