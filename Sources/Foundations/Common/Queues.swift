/// Queue names shared by the services. The first two are the original system's and must not change.
public enum QueueName {
    /// Where the user service publishes its events.
    public static let dispatch = "queue_dispatch"
    /// The order service's input.
    public static let order = "queue_order"
    /// Where the router moves events that have no route.
    public static let unrouted = "queue_unrouted"

    /// The dead-letter queue of `queue`: `<queue>.dead`.
    public static func deadLetter(for queue: String) -> String {
        queue + ".dead"
    }
}

/// AMQP header names used on moved (dead-lettered or unrouted) messages and for tracing.
public enum HeaderName {
    /// Why the message was moved.
    public static let error = "x-error"
    /// When it was moved (ISO 8601).
    public static let failedAt = "x-failed-at"
    /// The queue it was consumed from.
    public static let originalQueue = "x-original-queue"
    /// How many times processing it was attempted: on a dead letter, in all; on a message republished because it
    /// was redelivered, so far (the count travels with the message across restarts and consumers).
    public static let attempts = "x-attempts"
    /// Set by RabbitMQ on deliveries from a quorum queue: how many times the message was returned unsettled.
    public static let deliveryCount = "x-delivery-count"
    /// W3C trace context.
    public static let traceparent = "traceparent"
    /// W3C trace context: vendor-specific trace state, carried beside `traceparent`.
    public static let tracestate = "tracestate"
}
