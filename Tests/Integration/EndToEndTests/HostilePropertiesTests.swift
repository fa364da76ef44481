import BrokerTestSupport
import Foundation
import Messaging
import TestSupport
import Testing

/// Messages whose AMQP properties hold any value another client may send, at the edges of every type, published
/// straight to the queues of the running services with a bare rabbitmq-c client: the services stay up, a valid
/// event is forwarded and stored, an invalid one is dead-lettered (its copy encodable), and the next user flows
/// without a reconnect.
@Suite(.timeLimit(.minutes(3)))
struct HostilePropertiesTests {
    /// Every header type at its edges, nested tables and arrays, and bytes that are not UTF-8.
    static let edgeHeaders: [(String, RawField)] = [
        ("i8-min", .i8(.min)), ("i8-max", .i8(.max)), ("u8-max", .u8(.max)), ("i16-min", .i16(.min)),
        ("u16-max", .u16(.max)), ("i32-min", .i32(.min)), ("u32-max", .u32(.max)), ("i64-min", .i64(.min)),
        ("i64-max", .i64(.max)), ("u64-max", .u64(.max)), ("zero", .i32(0)), ("negative", .i64(-1)),
        // NaN and infinities are left out: RabbitMQ itself refuses them (it closes the publisher's channel).
        ("f32-max", .f32(-.greatestFiniteMagnitude)), ("f32-tiny", .f32(.leastNonzeroMagnitude)),
        ("f64-max", .f64(.greatestFiniteMagnitude)), ("f64-tiny", .f64(-.leastNonzeroMagnitude)),
        ("decimal", .decimal(decimals: 255, value: .max)), ("timestamp-max", .timestamp(.max)), ("void", .void),
        ("bool", .bool(true)), ("bytes-invalid-utf8", .bytes(Array(repeating: 0xFF, count: 100))),
        ("utf8-invalid", .utf8([0xC3, 0x28, 0xFF, 0xFE])), ("empty", .text("")),
        ("tables", .nested(depth: 40, arrays: false)), ("arrays", .nested(depth: 40, arrays: true)),
        ("mixed", .array([.table([("a", .array([.u64(.max), .void, .f64(-0.0)]))]), .timestamp(.max)])),
        // Floats rendered as text grow: many of them together outgrow a small frame once re-encoded.
        ("x-delivery-count", .i64(0)), ("x-attempts", .text("99999999999999999999999")),
    ]

    /// Raw properties at their edges: the largest timestamp, a message_id of 100 bytes that are not UTF-8 (300 bytes
    /// once repaired), a type that is not UTF-8 either.
    static func edgeProperties(headers: [(String, RawField)] = edgeHeaders) -> RawProperties {
        RawProperties(
            messageID: Array(repeating: 0xFF, count: 100), type: [0xFE, 0x41], timestamp: .max, headers: headers)
    }

    private func event(_ name: String, userID: String) -> [UInt8] {
        Array(#"{"event":"user_created","user_id":"\#(userID)","name":"\#(name)","email":"\#(userID)@example.com","event_id":"ev-\#(userID)","version":1}"#.utf8)
    }

    @Test func aTimestampAtTheTopOfItsRangeDoesNotStopEitherConsumer() async throws {
        let system = try await RunningSystem.start("timestamp-max")
        try await withCleanup({ await system.stopAll() }) {
            for value: UInt64 in [.max, .max - 1, 0, 1 << 63] {
                let userID = "ts-\(value)"
                try RawPublisher.publish(
                    url: system.brokerURL, queue: "queue_dispatch", body: event("T", userID: userID),
                    properties: RawProperties(timestamp: value))
                try await eventually(timeout: .seconds(15), "the event with timestamp \(value) is stored") {
                    try system.snapshots()[userID] != nil
                }
            }
            try RawPublisher.publish(
                url: system.brokerURL, queue: "queue_order", body: Array("garbage".utf8),
                properties: RawProperties(timestamp: .max))
            let dead = try await system.take(1, from: "queue_order.dead")
            #expect(dead.first?.properties.timestamp == .max, "the dead-letter copy keeps the timestamp as received")
            try await system.expectFlowAndNoReconnect()
        }
    }

    @Test func headersOfEveryTypeAtTheirEdgesDoNotStopTheFlow() async throws {
        let system = try await RunningSystem.start("edge-headers")
        try await withCleanup({ await system.stopAll() }) {
            try RawPublisher.publish(
                url: system.brokerURL, queue: "queue_dispatch", body: event("H", userID: "edge-valid"),
                properties: Self.edgeProperties())
            try await eventually(timeout: .seconds(15), "the event is forwarded and stored") {
                try system.snapshots()["edge-valid"] != nil
            }
            for queue in ["queue_dispatch", "queue_order"] {
                try RawPublisher.publish(
                    url: system.brokerURL, queue: queue, body: Array("{not json".utf8), properties: Self.edgeProperties())
                let dead = try await system.take(1, from: "\(queue).dead")
                #expect(dead.count == 1, "\(system.logs())")
                #expect(dead.first?.properties.headers["x-error"]?.isEmpty == false)
                #expect(dead.first?.properties.timestamp == .max)
            }
            try await system.expectFlowAndNoReconnect()
        }
    }

    @Test(arguments: [false, true])
    func deeplyNestedHeadersDoNotStopTheFlow(arrays: Bool) async throws {
        let system = try await RunningSystem.start("nested-\(arrays ? "arrays" : "tables")")
        try await withCleanup({ await system.stopAll() }) {
            // Up to what one 128 KiB frame holds: about 5 bytes a level of arrays, 7 of tables.
            for depth in [99, 100, 101, 1_000, arrays ? 20_000 : 14_000] {
                let userID = "nested-\(depth)"
                try await onLargeStack {
                    try RawPublisher.publish(
                        url: system.brokerURL, queue: "queue_dispatch", body: event("N", userID: userID),
                        properties: RawProperties(headers: [("deep", .nested(depth: depth, arrays: arrays))]))
                }
                // Stored, or set aside with a reason: never stuck, never lost.
                try await eventually(timeout: .seconds(20), "the event nested \(depth) deep is handled") {
                    if try system.snapshots()[userID] != nil { return true }
                    return try await !system.take(1, from: "queue_dispatch.dead", timeout: .milliseconds(500)).isEmpty
                }
            }
            try await system.expectFlowAndNoReconnect()
        }
    }
}

/// Runs `body` on a thread of its own with a 64 MiB stack: encoding a header nested 20,000 deep recurses as deep.
private func onLargeStack(_ body: @escaping @Sendable () throws -> Void) async throws {
    try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
        let thread = Thread { done.resume(with: Result { try body() }) }
        thread.stackSize = 64 << 20
        thread.start()
    }
}
