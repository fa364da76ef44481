public import Foundation

/// The AMQP basic properties this system uses.
public struct MessageProperties: Sendable, Equatable {
    /// MIME type of the body.
    public var contentType: String?
    /// Application message identifier (the event id).
    public var messageID: String?
    /// Message type name (the event name).
    public var type: String?
    /// AMQP timestamp: seconds since 1970 as the wire carries them (any 64-bit value a publisher sent, kept as is so
    /// that a republish sends it back unchanged). ``timestamp(for:)`` makes one from a date.
    public var timestamp: UInt64?
    /// Name of the publishing application.
    public var appID: String?
    /// `delivery_mode` 2 (persistent) when `true`, 1 (transient) when `false`.
    public var persistent: Bool
    /// Header table with string values. On receive, non-string values (ints, bools, ...) are rendered as strings.
    public var headers: [String: String]

    /// Creates properties; the defaults are what this system publishes: JSON, persistent, no headers.
    public init(
        contentType: String? = "application/json",
        messageID: String? = nil,
        type: String? = nil,
        timestamp: UInt64? = nil,
        appID: String? = nil,
        persistent: Bool = true,
        headers: [String: String] = [:]
    ) {
        self.contentType = contentType
        self.messageID = messageID
        self.type = type
        self.timestamp = timestamp
        self.appID = appID
        self.persistent = persistent
        self.headers = headers
    }

    /// The AMQP timestamp of `date`: whole seconds since 1970, clamped to what the field holds (a date before 1970
    /// is 0; one beyond the 64-bit range, or not finite, is the largest value).
    public static func timestamp(for date: Date) -> UInt64 {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        guard seconds.isFinite else { return seconds < 0 ? 0 : .max }
        if seconds <= 0 { return 0 }
        return seconds >= 18_446_744_073_709_551_615.0 ? .max : UInt64(seconds)
    }
}

/// A message to publish to the default exchange `""` with routing key = `queue`, `mandatory` set.
public struct OutboundMessage: Sendable {
    /// Destination queue (the routing key on the default exchange).
    public var queue: String
    /// Message body.
    public var body: [UInt8]
    /// Message properties.
    public var properties: MessageProperties

    /// Creates a message for `queue`.
    public init(queue: String, body: [UInt8], properties: MessageProperties = MessageProperties()) {
        self.queue = queue
        self.body = body
        self.properties = properties
    }
}

/// A message received by a ``Consumer``; settle it with ``Consumer/ack(_:multiple:)`` or
/// ``Consumer/reject(_:requeue:)``.
public struct Delivery: Sendable {
    /// Message body.
    public var body: [UInt8]
    /// Message properties.
    public var properties: MessageProperties
    /// Whether the broker delivered this message before (to this or another consumer) without an ack.
    public var redelivered: Bool
    /// The queue it was consumed from.
    public var queue: String
    /// Delivery tag on the channel that delivered it: ascending in delivery order on that connection.
    public let deliveryTag: UInt64
    /// Which connection of the consumer delivered it: tags are only valid, and only ordered, on that connection.
    public let generation: UInt64

    init(
        body: [UInt8], properties: MessageProperties, redelivered: Bool, queue: String, deliveryTag: UInt64,
        generation: UInt64
    ) {
        self.body = body
        self.properties = properties
        self.redelivered = redelivered
        self.queue = queue
        self.deliveryTag = deliveryTag
        self.generation = generation
    }
}
