import BrokerTestSupport
import Common
import EventCodec
import Foundation
import HTTPServer
import Logging
import Messaging
import ServiceRuntime
import TestSupport
import Testing

@testable import OrderService

/// Events put straight on `queue_order`, shuffled and duplicated, against the real order service in process.
@Suite(.serialized)
struct SnapshotOrderingTests {
    private func startOrderService() async throws -> (port: Int, url: String, running: InProcessService) {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("ordering")
        let directory = try temporaryDirectory("ordering")
        let app = try OrderServiceApp(
            configuration: OrderServiceConfiguration(
                http: HTTPServerConfiguration(host: "127.0.0.1", port: 0), databasePath: "\(directory)/orders.sqlite",
                broker: try BrokerConfiguration(url: url)),
            logger: Logger(label: "ordering-test"))
        let running = InProcessService(app.services.inStartOrder)
        return (try await app.listeningPort(), url, running)
    }

    private func publish(_ events: [UserEvent], url: String) async throws {
        let publisher = Publisher(
            configuration: try BrokerConfiguration(url: url), declaring: [QueueName.order], logger: Logger(label: "test"))
        let task = Task { try await publisher.run() }
        defer { task.cancel() }
        try await publisher.publish(
            events.map { event in
                OutboundMessage(
                    queue: QueueName.order, body: event.encodedBody(),
                    properties: MessageProperties(messageID: event.eventID, type: event.kind.rawValue))
            })
    }

    private func event(_ kind: UserEvent.Kind, user: Int, version: Int64) -> UserEvent {
        UserEvent(
            kind: kind, userID: "user-\(user)", name: kind == .deleted ? nil : "name \(user) v\(version)",
            email: kind == .deleted ? nil : "u\(user)v\(version)@example.com", eventID: "event-\(user)-\(version)",
            version: version, occurredAt: Date())
    }

    @Test func scrambledDuplicatedEventsEndInTheHighestVersion() async throws {
        let (port, url, running) = try await startOrderService()
        let users = 60
        var events: [UserEvent] = []
        var rng = SystemRandomNumberGenerator()
        for user in 0..<users {
            var history = [event(.created, user: user, version: 1)]
            history += (2...4).map { event(.updated, user: user, version: $0) }
            if user % 3 == 0 { history.append(event(.deleted, user: user, version: 5)) }
            for item in history {
                // Each event one to three times.
                events += Array(repeating: item, count: Int.random(in: 1...3, using: &rng))
            }
        }
        events.shuffle(using: &rng)
        try await publish(events, url: url)

        for user in 0..<users {
            let path = "/snapshots/users/user-\(user)"
            if user % 3 == 0 {
                try await eventually("user-\(user) deleted") {
                    try await httpRequest("GET", port: port, path: path).status == 410
                }
            } else {
                try await eventually("user-\(user) at version 4") {
                    try await httpRequest("GET", port: port, path: path).json["version"] as? Int == 4
                }
                let snapshot = try await httpRequest("GET", port: port, path: path)
                #expect(snapshot.json["name"] as? String == "name \(user) v4")
                #expect(snapshot.json["email"] as? String == "u\(user)v4@example.com")
            }
        }

        // A late update after the delete, and stale duplicates, change nothing.
        try await publish(
            [event(.updated, user: 0, version: 4), event(.created, user: 1, version: 1), event(.updated, user: 1, version: 3)],
            url: url)
        try await publish([event(.created, user: 999, version: 1)], url: url)
        // Ready plus unacked: zero once every message above was applied and acked.
        try await eventually("the queue is drained") {
            try await TestBroker.shared().messageCount(queue: QueueName.order, virtualHostURL: url) == 0
        }
        #expect(try await httpRequest("GET", port: port, path: "/snapshots/users/user-0").status == 410)
        let user1 = try await httpRequest("GET", port: port, path: "/snapshots/users/user-1")
        #expect(user1.json["version"] as? Int == 4)

        // The list shows live users only, in pages.
        var listed: [String] = []
        var path = "/snapshots/users?limit=7"
        for _ in 0..<50 {
            let page = try await httpRequest("GET", port: port, path: path)
            listed += (page.json["items"] as? [[String: Any]] ?? []).compactMap { $0["user_id"] as? String }
            guard let next = page.json["next"] as? String else { break }
            path = "/snapshots/users?limit=7&after=\(next)"
        }
        let live = (0..<users).filter { $0 % 3 != 0 }.map { "user-\($0)" } + ["user-999"]
        #expect(listed == live.sorted())
        #expect(try await httpRequest("GET", port: port, path: "/snapshots/users/nobody").status == 404)
        #expect(try await httpRequest("GET", port: port, path: "/snapshots/users?limit=0").status == 422)
        await running.stop()
    }
}
