import BrokerTestSupport
import Foundation
import Messaging
import TestSupport
import Testing

/// Messages whose fields AMQP cannot carry, fed to the running services: each ends in `<queue>.dead` once, with a
/// bounded `x-error`, no connection is lost (the reconnect counters stay at zero) and the next user flows at once.
struct HostileMessageTests {
    @Test func aHugeEventValueOnTheOrderQueueIsDeadLetteredOnceWithoutAReconnect() async throws {
        let system = try await RunningSystem.start("huge-event")
        defer { Task { await system.stopAll() } }
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

    @Test func aLongEventIDOnTheDispatchQueueIsDeadLetteredOnceWithoutAReconnect() async throws {
        let system = try await RunningSystem.start("long-event-id")
        defer { Task { await system.stopAll() } }
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
