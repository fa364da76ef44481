import Common
import EventCodec
import Delivery
import Logging
import Messaging
import Metrics
import ServiceRuntime

/// Forwards each event from `queue_dispatch` to the queues its type is routed to.
///
/// The handler returns (and so the source is acked) only after every destination confirmed the publish. A batch is
/// forwarded in one publish (pipelined inside the confirm window) and returns once every copy was confirmed.
struct EventRouter: Sendable {
    let table: CurrentRoutingTable
    let publisher: Publisher
    let sourceQueue: String
    let logger: Logger
    /// Made with the router, so its counters bind to the metrics factory of the app being assembled.
    let metrics = ForwardingMetrics()

    func handle(_ delivery: Delivery) async throws {
        let route = try self.route(delivery)
        try await publishRedeclaring(route.messages)
        record(route)
    }

    /// Forwards a batch of deliveries with one confirmed publish of every copy; throws (and then no delivery may be
    /// acked) when any delivery is not an event or any copy was not confirmed.
    func handle(batch deliveries: [Delivery]) async throws {
        let routes = try deliveries.map(route)
        try await publishRedeclaring(routes.flatMap(\.messages))
        for route in routes { record(route) }
    }

    /// Where one delivery goes.
    private struct Route {
        /// The copies to publish: one per destination, or the one to `queue_unrouted`.
        var messages: [OutboundMessage]
        /// Whether the event had no route.
        var isUnrouted: Bool
        var metadata: Logger.Metadata
    }

    /// The copies of `delivery` to publish; throws ``InvalidMessage`` when it is not an event.
    private func route(_ delivery: Delivery) throws -> Route {
        let eventType: String
        var properties = delivery.properties
        var metadata: Logger.Metadata = [:]
        do throws(EventDecodingError) {
            // One scan gives the type and, for the types this system knows, the validated event.
            let envelope = try UserEvent.envelope(of: delivery.body, messageID: properties.messageID)
            eventType = envelope.type
            if let event = envelope.event {
                // Messages in the original system's shape carry no id: give every copy the same derived one.
                properties.messageID = event.eventID
                metadata = ["event_id": .untrusted(event.eventID), "user_id": .untrusted(event.userID)]
            }
        } catch {
            throw InvalidMessage(error)
        }
        // Counts of this queue's deliveries (ours, or the broker's on a quorum queue) must not follow the event to
        // its destinations, where they would count against it from the start.
        properties.headers[HeaderName.attempts] = nil
        properties.headers[HeaderName.deliveryCount] = nil
        // What was received may not fit once re-encoded (a float rendered as a longer string, invalid UTF-8 repaired
        // into three bytes a byte): the copies carry what fits the frame agreed with the broker, and the log says what
        // was left out. The defaults below are set after, so a dropped `type` is filled in again.
        let fitting = properties.fittedToAMQP(
            frameMax: publisher.frameMax, keeping: [HeaderName.traceparent, HeaderName.tracestate])
        properties = fitting.properties
        if !fitting.dropped.isEmpty { metadata["dropped"] = .untrusted(fitting.dropped.joined(separator: ", ")) }
        if properties.type == nil { properties.type = eventType }
        if properties.contentType == nil { properties.contentType = "application/json" }
        if let trace = properties.headers[HeaderName.traceparent] { metadata["traceparent"] = .untrusted(trace) }
        metadata["event"] = .untrusted(eventType)

        let destinations = table.value.destinations(for: eventType)
        guard !destinations.isEmpty else {
            let letter = DeadLetter(reason: "no route for event type '\(eventType)'")
            let message = OutboundMessage(
                queue: QueueName.unrouted, body: delivery.body,
                properties: letter.marking(properties, movedFrom: sourceQueue, frameMax: publisher.frameMax))
            return Route(messages: [message], isUnrouted: true, metadata: metadata)
        }
        metadata["destinations"] = "\(destinations.joined(separator: ","))"
        return Route(
            messages: destinations.map { OutboundMessage(queue: $0, body: delivery.body, properties: properties) },
            isUnrouted: false, metadata: metadata)
    }

    /// Counts and logs a route whose copies were confirmed.
    private func record(_ route: Route) {
        if route.isUnrouted {
            metrics.unrouted.increment()
            logger.warning("event has no route, moved to \(QueueName.unrouted)", metadata: route.metadata)
            return
        }
        for message in route.messages { metrics.forwarded.labelled(message.queue).increment() }
        if route.metadata["dropped"] != nil {
            logger.warning("event forwarded without what AMQP cannot carry of its properties", metadata: route.metadata)
        } else {
            logger.debug("event forwarded", metadata: route.metadata)
        }
    }
}

extension EventRouter {
    /// Publishes `messages` with confirm. A destination that has disappeared (someone deleted it: the publish came
    /// back unroutable) is the broker's state, not the event's fault: declare every destination again and publish
    /// again, a few times, before failing as an ordinary (counted) attempt. Destinations that had confirmed get the
    /// message again; their consumers absorb duplicates.
    func publishRedeclaring(_ messages: [OutboundMessage]) async throws {
        var messages = messages
        var redeclared = 0
        var refitted = false
        while true {
            do {
                try await publisher.publish(messages)
                return
            } catch let error as MessagingError where error.code == .unencodable && !refitted {
                // Fitted to a frame size the broker no longer agrees to (a reconnect to another node): once more, fitted
                // to the least a broker may agree to; what still cannot be carried is the event's fault.
                refitted = true
                let keeping = Set([HeaderName.traceparent, HeaderName.tracestate] + DeadLetter.headerNames)
                messages = messages.map { message in
                    var message = message
                    message.properties = message.properties.fittedToAMQP(
                        frameMax: AMQPLimits.minimumFrameSize, keeping: keeping
                    ).properties
                    return message
                }
                logger.warning("a forward did not fit the agreed frame size, fitted to the smallest", metadata: ["error": "\(error)"])
            } catch let error as MessagingError where error.code == .unroutable && redeclared < 3 {
                redeclared += 1
                let queues = Array(Set(messages.map(\.queue))).sorted()
                logger.warning(
                    "destination queue missing, declaring it again",
                    metadata: ["queues": "\(queues.joined(separator: ","))", "error": "\(error)"])
                try await publisher.declare(queues)
            }
        }
    }
}

/// `events_forwarded_total{destination}` (one per confirmed copy) and `events_unrouted_total`.
///
/// Destinations come from the routing table, so the label set is bounded by it.
struct ForwardingMetrics: Sendable {
    let unrouted = Counter(label: "events_unrouted_total", factory: MetricsSystem.factory)
    let forwarded = MetricFamily(counter: "events_forwarded_total", varying: ["destination"])
}
