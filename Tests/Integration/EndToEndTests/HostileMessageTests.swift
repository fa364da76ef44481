import BrokerTestSupport
import Foundation
import Messaging
import SQLiteStorage
import TestSupport
import Testing

/// Messages whose fields AMQP cannot carry, fed to the running services: each ends in `<queue>.dead` once, with a
/// bounded `x-error`, no connection is lost (the reconnect counters stay at zero) and the next user flows at once.
struct HostileMessageTests {
    @Test func aHugeEventValueOnTheOrderQueueIsDeadLetteredOnceWithoutAReconnect() async throws {
        let system = try await RunningSystem.start("huge-event")
        try await withCleanup({ await system.stopAll() }) {
            let event = String(repeating: "e", count: 140_000)
            let body = #"{"event":"\#(event)","user_id":"u-1","name":"A","email":"a@example.com"}"#
            try await system.publish([OutboundMessage(queue: "queue_order", body: Array(body.utf8))])

            let dead = try await system.take(1, from: "queue_order.dead")
            #expect(dead.count == 1, "\(system.logs())")
            let error = dead.first?.properties.headers["x-error"] ?? ""
            #expect(error.utf8.count <= 1_024, "x-error is \(error.utf8.count) bytes")
            #expect(dead.first?.body == Array(body.utf8), "the body is kept intact")

            try await system.expectFlowAndNoReconnect()
            #expect(try await system.take(1, from: "queue_order.dead", timeout: .seconds(2)).isEmpty, "moved once")
        }
    }

    @Test func aLongEventIDOnTheDispatchQueueIsDeadLetteredOnceWithoutAReconnect() async throws {
        let system = try await RunningSystem.start("long-event-id")
        try await withCleanup({ await system.stopAll() }) {
            let eventID = String(repeating: "i", count: 300)
            let body = #"{"event":"user_created","user_id":"u-2","name":"B","email":"b@example.com","event_id":"\#(eventID)","version":1}"#
            try await system.publish([OutboundMessage(queue: "queue_dispatch", body: Array(body.utf8))])

            let dead = try await system.take(1, from: "queue_dispatch.dead")
            #expect(dead.count == 1, "\(system.logs())")
            #expect(dead.first?.properties.headers["x-error"]?.isEmpty == false)
            #expect(dead.first?.body == Array(body.utf8))

            try await system.expectFlowAndNoReconnect()
            #expect(try await system.take(1, from: "queue_dispatch.dead", timeout: .seconds(2)).isEmpty, "moved once")
        }
    }

    @Test func anEventOverTheAPIsLimitsIsDeadLetteredNamingTheField() async throws {
        let system = try await RunningSystem.start("over-limits")
        try await withCleanup({ await system.stopAll() }) {
            let name = String(repeating: "n", count: 600_000)
            let body = #"{"event":"user_created","user_id":"u-big","name":"\#(name)","email":"big@example.com","version":1}"#
            try await system.publish([OutboundMessage(queue: "queue_order", body: Array(body.utf8))])
            let dead = try await system.take(1, from: "queue_order.dead")
            #expect(dead.count == 1, "\(system.logs())")
            let error = dead.first?.properties.headers["x-error"] ?? ""
            #expect(error.hasPrefix("name: must be at most 400 bytes"), "\(error)")
            #expect(try system.snapshots()["u-big"] == nil, "nothing over the limits is stored")
            try await system.expectFlowAndNoReconnect()
        }
    }

    @Test func anOutboxRowTheBrokerCannotCarryIsSetAsideAndTheNextUsersFlow() async throws {
        let system = try await RunningSystem.start("set-aside")
        try await withCleanup({ await system.stopAll() }) {
            // A row no API call makes (a manual insert, a restore): its event id is longer than a message_id may be.
            let longID = String(repeating: "e", count: 300)
            let body = #"{"event":"user_created","user_id":"u-x","name":"X","email":"x@example.com","event_id":"\#(longID)","version":1}"#
            try SQLiteConnection(path: system.usersDatabase).run(
                """
                INSERT INTO outbox(event_id, event_type, user_id, body, traceparent, created_at)
                VALUES (?, 'user_created', 'u-x', ?, NULL, '2026-12-08T00:00:00.000Z')
                """, longID, Array(body.utf8))
            for index in 0..<5 {
                let created = try await system.createUser(name: "After \(index)", email: "after\(index)@example.com")
                #expect(created.status == 201)
            }
            try await eventually(timeout: .seconds(15), "the five users after the row reach the order service") {
                try system.snapshots().values.filter { $0.name?.hasPrefix("After ") == true }.count == 5
            }
            let ready = try await system.request("GET", path: "/readyz")
            #expect(ready.status == 200)
            #expect(ready.json["outbox_set_aside"] as? Int == 1, "\(ready.json)")
            let text = try await system.request("GET", path: "/metrics")
            let metrics = try PrometheusText(String(decoding: text.body, as: UTF8.self))
            #expect(metrics.values("outbox_set_aside_total") == [1])
            #expect(metrics.values("outbox_set_aside") == [1])
            #expect(system.logs().contains("outbox row set aside"))
        }
    }
}
