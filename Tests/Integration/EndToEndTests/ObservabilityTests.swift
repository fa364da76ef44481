import BrokerTestSupport
import Common
import Foundation
import Messaging
import Synchronization
import Testing
import TestSupport

/// `/metrics` of the three processes after real traffic, and a `traceparent` followed through logs and headers.
@Suite(.serialized)
struct ObservabilityTests {
    @Test func metricsCountTheTrafficOnEveryService() async throws {
        let system = try await RunningSystem.start("metrics")
        try await withCleanup({ await system.stopAll() }) {
            let creates = 5
            var ids: [String] = []
            for index in 0..<creates {
                let response = try await system.createUser(name: "Metric \(index)", email: "metric\(index)@example.com")
                try #require(response.status == 201)
                ids.append(try #require(response.json["id"] as? String))
            }
            #expect(try await system.createUser(name: "Again", email: "metric0@example.com").status == 409)
            #expect(try await system.request("GET", path: "/users/nobody").status == 404)
            let patched = try await system.request("PATCH", path: "/users/\(ids[0])", json: ["name": "Metric 0 renamed"])
            #expect(patched.status == 200)
            let events = creates + 1
            try await system.publish([
                OutboundMessage(queue: QueueName.dispatch, body: Array("this is not json".utf8)),
                OutboundMessage(queue: QueueName.dispatch, body: Array(#"{"event":"user_created","user_id":"x"}"#.utf8)),
            ])

            // The order service: every event applied once, each with its lag observed.
            let order = try await scrape(system, port: system.orderPort) { metrics in
                metrics.value("snapshots_applied_total", ["result": "applied"]) == Double(events)
            }
            #expect(order.value("snapshots_applied_total", ["result": "ignored"]) != nil)
            #expect((order.value("events_consumed_total", ["queue": QueueName.order]) ?? 0) >= Double(events))
            #expect(order.value("event_lag_seconds_count") == Double(events))
            #expect(order.value("event_lag_seconds_bucket", ["le": "+Inf"]) == Double(events))
            let lagBuckets = order.samples.filter { $0.name == "event_lag_seconds_bucket" }.map(\.value)
            #expect(lagBuckets.count > 5 && lagBuckets == lagBuckets.sorted(), "cumulative buckets: \(lagBuckets)")
            #expect((order.value("event_lag_seconds_sum") ?? -1) > 0)
            #expect((order.value("sqlite_transaction_duration_seconds_count") ?? 0) >= 1)
            #expect(order.value("amqp_reconnects_total", ["role": "consumer"]) == 0)

            // The router: everything consumed, the events forwarded, the garbage dead-lettered by reason.
            let notification = try await scrape(system, port: system.notificationPort) { metrics in
                metrics.value("events_dead_lettered_total", ["reason": "invalid_event"]) == 1
                    && metrics.value("events_dead_lettered_total", ["reason": "invalid_json"]) == 1
            }
            #expect((notification.value("events_consumed_total", ["queue": QueueName.dispatch]) ?? 0) >= Double(events + 2))
            #expect((notification.value("events_forwarded_total", ["destination": QueueName.order]) ?? 0) >= Double(events))
            #expect(
                notification.value(
                    "events_dead_lettered_total", ["queue": QueueName.dispatch, "reason": "invalid_json"]) == 1)
            #expect(notification.values("events_dead_lettered_total", ["reason": "max_attempts"]).isEmpty)
            #expect(notification.value("events_unrouted_total") == 0)
            #expect(
                (notification.value("http_requests_total", ["method": "GET", "route": "/readyz", "status": "200"]) ?? 0)
                    >= 1)

            // The user service: requests by route and status, the outbox empty at rest.
            let user = try await scrape(system, port: system.userPort) { metrics in
                metrics.value("outbox_backlog") == 0
            }
            func requests(_ method: String, _ route: String, _ status: Int) -> Double? {
                user.value("http_requests_total", ["method": method, "route": route, "status": "\(status)"])
            }
            #expect(requests("POST", "/users", 201) == Double(creates))
            #expect(requests("POST", "/users", 409) == 1)
            #expect(requests("GET", "/users/{id}", 404) == 1)
            #expect(requests("PATCH", "/users/{id}", 200) == 1)
            #expect(user.values("http_requests_total").allSatisfy { $0 >= 1 })
            #expect(!user.samples.contains { $0.labels["route"]?.contains(ids[0]) == true }, "routes are patterns")
            let posts = ["method": "POST", "route": "/users"]
            #expect(user.value("http_request_duration_seconds_count", posts) == Double(creates + 1))
            let allPosts = user.value("http_request_duration_seconds_bucket", posts.merging(["le": "+Inf"]) { $1 })
            #expect(allPosts == Double(creates + 1))
            #expect((user.value("outbox_publish_duration_seconds_count") ?? 0) >= 1)
            #expect((user.value("sqlite_transaction_duration_seconds_count") ?? 0) >= Double(events))
            #expect(user.value("amqp_reconnects_total", ["role": "publisher"]) == 0)

            let raw = try await system.request("GET", port: system.userPort, path: "/metrics")
            #expect(raw.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)

            // The broker drops every connection of this system: each one comes back and is counted.
            let broker = try await TestBroker.shared()
            let virtualHost = String(system.brokerURL.split(separator: "/").last ?? "")
            _ = try await broker.ctl(["close_all_connections", "-p", virtualHost, "observability test"])
            _ = try await scrape(system, port: system.orderPort) { metrics in
                (metrics.value("amqp_reconnects_total", ["role": "consumer"]) ?? 0) >= 1
                    && (metrics.value("amqp_reconnects_total", ["role": "publisher"]) ?? 0) >= 1
            }
            _ = try await scrape(system, port: system.userPort) { metrics in
                (metrics.value("amqp_reconnects_total", ["role": "publisher"]) ?? 0) >= 1
            }
        }
    }

    @Test func traceparentTravelsFromTheRequestToEveryServiceLog() async throws {
        let system = try await RunningSystem.start("trace", logLevel: "debug")
        try await withCleanup({ await system.stopAll() }) {
            // A request with a traceparent: the same trace id in the router's and the order service's lines for the event.
            let traceID = Self.hex(16)
            let traceparent = "00-\(traceID)-\(Self.hex(8))-01"
            let created = try await system.createUser(
                name: "Traced", email: "traced@example.com", headers: ["traceparent": traceparent])
            try #require(created.status == 201)
            #expect(created.headers["traceparent"] == traceparent)
            let id = try #require(created.json["id"] as? String)
            try await eventually(timeout: .seconds(20), "trace \(traceID) in every log\n\(system.logs())") {
                [system.user, system.notification, system.order].allSatisfy { process in
                    Self.eventLines(in: process.log(), userID: id).contains { $0.contains(traceID) }
                }
            }

            // Without one, the user service starts a trace, answers with it, and it travels just the same.
            let untraced = try await system.createUser(name: "Untraced", email: "untraced@example.com")
            try #require(untraced.status == 201)
            let started = try #require(untraced.headers["traceparent"])
            #expect(TraceContext.isValid(started), "a valid traceparent: \(started)")
            let startedTraceID = String(started.split(separator: "-")[1])
            #expect(startedTraceID != traceID)
            let untracedID = try #require(untraced.json["id"] as? String)
            try await eventually(timeout: .seconds(20), "trace \(startedTraceID) in the order log\n\(system.logs())") {
                Self.eventLines(in: system.order.log(), userID: untracedID).contains { $0.contains(startedTraceID) }
            }
            // A refused change names its trace too.
            let refused = try await system.createUser(
                name: "Traced", email: "traced@example.com", headers: ["traceparent": traceparent])
            #expect(refused.status == 409)
            #expect(refused.headers["traceparent"] == traceparent)

            // On the wire: with the order service stopped, the routed message waits in queue_order with the header.
            try await system.order.stop()
            let headerTraceparent = "00-\(Self.hex(16))-\(Self.hex(8))-01"
            let waiting = try await system.createUser(
                name: "Waiting", email: "waiting@example.com", headers: ["traceparent": headerTraceparent])
            try #require(waiting.status == 201)
            let messages = try await system.take(1, from: QueueName.order)
            try #require(messages.count == 1, "a message on queue_order\n\(system.logs())")
            #expect(messages[0].properties.headers[HeaderName.traceparent] == headerTraceparent)
            #expect(String(decoding: messages[0].body, as: UTF8.self).contains(waiting.json["id"] as? String ?? "?"))
        }
    }

    // MARK: Helpers

    /// Scrapes `/metrics` on `port` until `condition` holds (or 20 seconds pass), and returns that scrape.
    private func scrape(
        _ system: RunningSystem, port: Int, until condition: @escaping @Sendable (PrometheusText) -> Bool
    ) async throws -> PrometheusText {
        let last = LastScrape()
        try await eventually(timeout: .seconds(20), "metrics on port \(port)\n\(last.text)\n\(system.logs())") {
            let response = try await system.request("GET", port: port, path: "/metrics")
            guard response.status == 200 else { return false }
            let metrics = try PrometheusText(String(decoding: response.body, as: UTF8.self))
            last.set(metrics)
            return condition(metrics)
        }
        return try #require(last.metrics)
    }

    /// Log lines about one user's events (`user_id=<id>` in their metadata).
    private static func eventLines(in log: String, userID: String) -> [Substring] {
        log.split(separator: "\n").filter { $0.contains("user_id=\(userID)") && $0.contains("event_id=") }
    }

    private static func hex(_ bytes: Int) -> String {
        (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 1...255)) }.joined()
    }
}

/// The latest scrape, kept for the failure message.
private final class LastScrape: Sendable {
    private let value = Mutex<PrometheusText?>(nil)

    var metrics: PrometheusText? { value.withLock { $0 } }
    var text: String { metrics?.description ?? "(no scrape)" }

    func set(_ metrics: PrometheusText) { value.withLock { $0 = metrics } }
}
