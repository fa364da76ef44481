import BrokerTestSupport
import Common
import EventCodec
import Delivery
import Foundation
import HTTPServer
import Logging
import Messaging
import Metrics
import Prometheus
import ServiceRuntime
import Synchronization
import TestSupport
import Testing

@testable import OrderService

/// Metrics recorded in process, each test into a registry of its own: the parts are assembled inside
/// `withMetricsFactory`, so nothing depends on (or changes) the process-wide `MetricsSystem`.
@Suite(.serialized)
struct MetricsTests {
    private struct PoisonError: Error {}

    @Test func deliveryLoopCountsConsumedAndDeadLetteredByReason() async throws {
        let registry = PrometheusCollectorRegistry()
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("metrics-loop")
        let configuration = try BrokerConfiguration(url: url)
        let queue = "queue_metrics"
        let logger = Logger(label: "metrics-test")
        let consumer = Consumer(configuration: configuration, queue: queue, logger: logger)
        let publisher = Publisher(
            configuration: configuration, declaring: [QueueName.deadLetter(for: queue)], logger: logger)
        let loop = withMetricsFactory(ServiceMetrics.makeFactory(registry: registry)) {
            DeliveryLoop(
                queue: queue, consumer: consumer, publisher: publisher, maxAttempts: 2, logger: logger
            ) { delivery in
                let event: UserEvent
                do throws(EventDecodingError) {
                    event = try UserEvent.decode(body: delivery.body)
                } catch {
                    throw InvalidMessage(error)
                }
                if event.name == "poison" { throw PoisonError() }
            }
        }
        let running = InProcessService([publisher, consumer, loop])

        let valid = UserEvent(
            kind: .created, userID: "u1", name: "fine", email: "fine@example.com", eventID: "e1", version: 1,
            occurredAt: Date())
        var poison = valid
        poison.name = "poison"
        poison.eventID = "e2"
        let sender = Publisher(configuration: configuration, declaring: [queue], logger: logger)
        let sending = Task { try await sender.run() }
        try await sender.publish(
            [
                Array("not json".utf8), Array(#"{"event":"user_created"}"#.utf8), valid.encodedBody(),
                poison.encodedBody(),
            ].map { OutboundMessage(queue: queue, body: $0) })
        sending.cancel()

        try await eventually("every message handled\n\(registry.emitToString())") {
            let metrics = try PrometheusText(registry.emitToString())
            return metrics.value("events_dead_lettered_total", ["queue": queue, "reason": "max_attempts"]) == 1
        }
        let metrics = try PrometheusText(registry.emitToString())
        #expect(metrics.value("events_consumed_total", ["queue": queue]) == 4)
        #expect(metrics.value("events_dead_lettered_total", ["queue": queue, "reason": "invalid_json"]) == 1)
        #expect(metrics.value("events_dead_lettered_total", ["queue": queue, "reason": "invalid_event"]) == 1)
        #expect(metrics.values("events_dead_lettered_total").count == 3)
        await running.stop()
    }

    @Test func orderServiceServesItsRegistryAndCountsAppliedAndIgnored() async throws {
        let registry = PrometheusCollectorRegistry()
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("metrics-order")
        let directory = try temporaryDirectory("metrics-order")
        let app = try withMetricsFactory(ServiceMetrics.makeFactory(registry: registry)) {
            try OrderServiceApp(
                configuration: OrderServiceConfiguration(
                    http: HTTPServerConfiguration(host: "127.0.0.1", port: 0),
                    databasePath: "\(directory)/orders.sqlite", broker: try BrokerConfiguration(url: url)),
                logger: Logger(label: "metrics-test"))
        }
        let running = InProcessService(app.services.inStartOrder)
        let port = try await app.listeningPort()

        func event(_ version: Int64) -> UserEvent {
            UserEvent(
                kind: version == 1 ? .created : .updated, userID: "u1", name: "v\(version)",
                email: "v\(version)@example.com", eventID: "e\(version)", version: version,
                occurredAt: Date().addingTimeInterval(-0.2))
        }
        // Versions 1 and 3 are applied; the duplicate of 3 and the late 2 are ignored. Each step waits for the one
        // before, since deliveries in flight together may be applied in any order.
        let sender = Publisher(
            configuration: try BrokerConfiguration(url: url), declaring: [QueueName.order],
            logger: Logger(label: "test"))
        let sending = Task { try await sender.run() }
        defer { sending.cancel() }
        let last = Mutex<PrometheusText?>(nil)
        for (versions, applied, ignored) in [([Int64(1)], 1.0, 0.0), ([3, 3], 2, 1), ([2], 2, 2)] {
            try await sender.publish(
                versions.map { OutboundMessage(queue: QueueName.order, body: event($0).encodedBody()) })
            try await eventually("\(applied) applied, \(ignored) ignored\n\(registry.emitToString())") {
                let response = try await httpRequest("GET", port: port, path: "/metrics")
                let metrics = try PrometheusText(String(decoding: response.body, as: UTF8.self))
                last.withLock { $0 = metrics }
                return metrics.value("snapshots_applied_total", ["result": "applied"]) == applied
                    && metrics.value("snapshots_applied_total", ["result": "ignored"]) == ignored
            }
        }
        let metrics = try #require(last.withLock { $0 })
        #expect(metrics.value("event_lag_seconds_count") == 2)
        #expect(metrics.value("event_lag_seconds_bucket", ["le": "0.1"]) == 0, "lag is at least 0.2 s")
        #expect(metrics.value("event_lag_seconds_bucket", ["le": "300.0"]) == 2)
        #expect(metrics.value("events_consumed_total", ["queue": QueueName.order]) == 4)
        #expect(
            (metrics.value("http_requests_total", ["method": "GET", "route": "/metrics", "status": "200"]) ?? 0) >= 1)
        let response = try await httpRequest("GET", port: port, path: "/metrics")
        #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        await running.stop()
    }
}
