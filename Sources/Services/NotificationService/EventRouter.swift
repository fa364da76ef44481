import Common
import Foundation
import Logging
import Messaging
import Metrics
import ServiceRuntime
import Synchronization

/// Forwards each event from `queue_dispatch` to the queues its type is routed to.
///
/// The handler returns (and so the source is acked) only after every destination confirmed the publish.
struct EventRouter: Sendable {
    let table: CurrentRoutingTable
    let publisher: Publisher
    let sourceQueue: String
    let logger: Logger
    /// Made with the router, so its counters bind to the metrics factory of the app being assembled.
    let metrics = ForwardingMetrics()

    func handle(_ delivery: Delivery) async throws {
        let eventType: String
        var properties = delivery.properties
        var metadata: Logger.Metadata = [:]
        do throws(EventDecodingError) {
            eventType = try UserEvent.eventType(of: delivery.body)
            if UserEvent.Kind(rawValue: eventType) != nil {
                let event = try UserEvent.decode(body: delivery.body, messageID: properties.messageID)
                // Messages in the original system's shape carry no id: give every copy the same derived one.
                properties.messageID = event.eventID
                metadata = ["event_id": "\(event.eventID)", "user_id": "\(event.userID)"]
            }
        } catch {
            throw InvalidMessage(error)
        }
        if properties.type == nil { properties.type = eventType }
        if properties.contentType == nil { properties.contentType = "application/json" }
        if let trace = properties.headers[HeaderName.traceparent] { metadata["traceparent"] = "\(trace)" }
        metadata["event"] = "\(eventType)"

        let destinations = table.value.destinations(for: eventType)
        guard !destinations.isEmpty else {
            properties.headers[HeaderName.error] = "no route for event type '\(eventType)'"
            properties.headers[HeaderName.failedAt] = Timestamp.format(Date())
            properties.headers[HeaderName.originalQueue] = sourceQueue
            try await publisher.publish(
                [OutboundMessage(queue: QueueName.unrouted, body: delivery.body, properties: properties)])
            metrics.unrouted.increment()
            logger.warning("event has no route, moved to \(QueueName.unrouted)", metadata: metadata)
            return
        }
        try await publisher.publish(
            destinations.map { OutboundMessage(queue: $0, body: delivery.body, properties: properties) })
        for destination in destinations { metrics.forwarded(to: destination).increment() }
        metadata["destinations"] = "\(destinations.joined(separator: ","))"
        logger.debug("event forwarded", metadata: metadata)
    }
}

/// `events_forwarded_total{destination}` (one per confirmed copy) and `events_unrouted_total`.
///
/// Destinations come from the routing table, so the label set is bounded by it; each counter is made on first use.
final class ForwardingMetrics: Sendable {
    let unrouted: Counter
    private let factory: any MetricsFactory
    private let forwardedByDestination = Mutex<[String: Counter]>([:])

    init() {
        factory = MetricsSystem.factory
        unrouted = Counter(label: "events_unrouted_total", factory: factory)
    }

    func forwarded(to destination: String) -> Counter {
        forwardedByDestination.withLock { counters in
            if let counter = counters[destination] { return counter }
            let counter = Counter(
                label: "events_forwarded_total", dimensions: [("destination", destination)], factory: factory)
            counters[destination] = counter
            return counter
        }
    }
}
