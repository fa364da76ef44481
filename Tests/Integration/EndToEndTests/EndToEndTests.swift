import Common
import EventCodec
import Foundation
import Messaging
import Testing
import TestSupport

/// The three executables as real processes, a real broker, real SQLite files.
@Suite(.serialized)
struct EndToEndTests {
    @Test func concurrentCreatesAllBecomeSnapshots() async throws {
        let system = try await RunningSystem.start("concurrent")
        try await withCleanup({ await system.stopAll() }) {
            let count = 200
            let created = try await withThrowingTaskGroup(of: (String, String, String).self) { group in
                for index in 0..<count {
                    group.addTask {
                        let name = "User \(index)"
                        let email = "user\(index)@example.com"
                        let response = try await system.createUser(name: name, email: email)
                        try #require(response.status == 201, "POST /users answered \(response.status)")
                        let id = try #require(response.json["id"] as? String)
                        #expect(response.headers["location"] == "/users/\(id)")
                        return (id, name, email)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(created.count == count)

            try await eventually(timeout: .seconds(30), "all \(count) snapshots committed\n\(system.logs())") {
                try system.snapshots().count == count
            }
            let snapshots = try system.snapshots()
            for (id, name, email) in created {
                #expect(snapshots[id] == .init(name: name, email: email, version: 1, deleted: false))
            }
        }
    }

    @Test func duplicateEmailIsRefusedAndProducesNoEvent() async throws {
        let system = try await RunningSystem.start("duplicate")
        try await withCleanup({ await system.stopAll() }) {
            let first = try await system.createUser(name: "Alice", email: "alice@example.com")
            #expect(first.status == 201)
            let second = try await system.createUser(name: "Alice Again", email: "ALICE@example.com")
            #expect(second.status == 409)
            #expect(second.json["error"] as? String == "email_taken")
            #expect((second.json["detail"] as? String)?.isEmpty == false)

            // A later user flows through: by then, any event of the refused request would have too.
            let third = try await system.createUser(name: "Bob", email: "bob@example.com")
            #expect(third.status == 201)
            try await eventually("Bob's snapshot\n\(system.logs())") {
                try system.snapshots()[third.json["id"] as? String ?? ""] != nil
            }
            #expect(try system.outboxCount() == 2)
            let snapshots = try system.snapshots()
            #expect(snapshots.count == 2)
            #expect(snapshots.values.filter { $0.email?.lowercased() == "alice@example.com" }.count == 1)
            #expect(snapshots[first.json["id"] as? String ?? ""]?.name == "Alice")
        }
    }

    @Test func originalSystemMessageReachesTheSnapshots() async throws {
        let system = try await RunningSystem.start("seed")
        try await withCleanup({ await system.stopAll() }) {
            let body = #"{"event":"user_created","user_id":"seed-42","name":"Seed User","email":"seed@example.com"}"#
            // The original publisher sets no properties beyond persistence.
            try await system.publish([
                OutboundMessage(
                    queue: QueueName.dispatch, body: Array(body.utf8),
                    properties: MessageProperties(contentType: nil, persistent: true))
            ])
            try await eventually("seed-42 snapshot\n\(system.logs())") { try system.snapshots()["seed-42"] != nil }
            #expect(
                try system.snapshots()["seed-42"]
                    == .init(name: "Seed User", email: "seed@example.com", version: 1, deleted: false))
        }
    }

    @Test func garbageGoesToTheDeadLetterQueueWhileTheFlowGoesOn() async throws {
        let system = try await RunningSystem.start("garbage")
        try await withCleanup({ await system.stopAll() }) {
            try await system.publish([
                OutboundMessage(queue: QueueName.dispatch, body: Array("this is not json".utf8)),
                OutboundMessage(
                    queue: QueueName.dispatch, body: Array(#"{"event":"user_created","user_id":"x"}"#.utf8)),
            ])
            let response = try await system.createUser(name: "After Garbage", email: "after@example.com")
            #expect(response.status == 201)
            try await eventually("snapshot after garbage\n\(system.logs())") {
                try system.snapshots()[response.json["id"] as? String ?? ""] != nil
            }

            let dead = try await system.take(2, from: QueueName.deadLetter(for: QueueName.dispatch))
            try #require(dead.count == 2, "dead-lettered: \(dead.count)\n\(system.logs())")
            let bodies = Set(dead.map { String(decoding: $0.body, as: UTF8.self) })
            #expect(bodies.contains("this is not json"))
            for message in dead {
                #expect(message.properties.headers[HeaderName.error]?.isEmpty == false)
                #expect(message.properties.headers[HeaderName.originalQueue] == QueueName.dispatch)
                #expect(message.properties.headers[HeaderName.failedAt].flatMap(Timestamp.parse) != nil)
            }
            let reasons = dead.compactMap { $0.properties.headers[HeaderName.error] }
            #expect(reasons.contains { $0.contains("name") }, "the invalid event's reason names the missing field: \(reasons)")
        }
    }

    @Test func userServiceKilledRightAfter201StillDeliversTheEvent() async throws {
        let system = try await RunningSystem.start("sigkill")
        try await withCleanup({ await system.stopAll() }) {
            // Without the notification service, nothing downstream can race the kill.
            try await system.notification.stop()
            let response = try await system.createUser(name: "Survivor", email: "survivor@example.com")
            #expect(response.status == 201)
            try await system.user.stop(signal: SIGKILL)
            let id = try #require(response.json["id"] as? String)

            try system.user.start()
            try system.notification.start()
            try await system.waitUntilReady()
            try await eventually("the killed service's event is delivered\n\(system.logs())") {
                try system.snapshots()[id] != nil
            }
            #expect(try system.snapshots()[id]?.name == "Survivor")
            // Published once or twice, applied once: the snapshot is at version 1.
            #expect(try system.snapshots()[id]?.version == 1)
        }
    }
}
