import Common
import EventCodec
public import Foundation
public import Messaging

/// The dead-letter header contract: what a message moved out of its queue carries, so that an operator can tell why
/// and move it back.
///
/// A move publishes a copy, with the original body and properties plus these headers, and acks the original only once
/// the broker confirmed the copy. The delivery loop moves to `<queue>.dead`, the router moves events without a route
/// to `queue_unrouted`, and `requeue-dead-letters` strips the headers again when it moves a message back:
/// - `x-error`: why, in words;
/// - `x-failed-at`: when (ISO 8601, milliseconds, UTC);
/// - `x-original-queue`: the queue it was consumed from;
/// - `x-attempts`: how many times processing it was attempted (not set on unrouted events, never processed).
public struct DeadLetter: Sendable, Equatable {
    /// Why the message is moved: the `x-error` header.
    public var reason: String
    /// Attempts made to process it: the `x-attempts` header, left out when nil.
    public var attempts: Int?

    /// Describes a move.
    public init(reason: String, attempts: Int? = nil) {
        self.reason = reason
        self.attempts = attempts
    }

    /// The headers a move adds, which `unmarking(_:)` removes.
    public static let headerNames = [HeaderName.error, HeaderName.failedAt, HeaderName.originalQueue, HeaderName.attempts]

    /// The most bytes of `x-error`: a reason that quotes a huge field is cut, so the copy always fits in a frame.
    public static let maxReasonBytes = 1_024

    /// `properties` with the headers of this move out of `queue` at `date`; every other property and header is kept
    /// as long as AMQP can carry it in a frame of `frameMax` bytes (the size agreed with the broker: the publisher's
    /// `frameMax`). What it cannot (a short string over 255 bytes, headers beyond the frame size) is dropped and named
    /// in `x-error`, which is cut to ``maxReasonBytes``, so the move itself never fails to encode.
    public func marking(
        _ properties: MessageProperties, movedFrom queue: String, at date: Date = Date(),
        frameMax: Int = AMQPLimits.frameMax
    ) -> MessageProperties {
        var properties = properties
        properties.headers[HeaderName.error] = AMQPLimits.truncating(reason, toBytes: Self.maxReasonBytes)
        properties.headers[HeaderName.failedAt] = Timestamp.format(date)
        properties.headers[HeaderName.originalQueue] = queue
        if let attempts { properties.headers[HeaderName.attempts] = String(attempts) }
        // Room is kept for `x-error` to grow by the note on what was dropped.
        let fitting = properties.fittedToAMQP(
            frameMax: max(AMQPLimits.minimumFrameSize, frameMax) - Self.maxReasonBytes, keeping: Set(Self.headerNames))
        var fitted = fitting.properties
        // The source queue's count, not the dead-letter queue's.
        fitted.headers[HeaderName.deliveryCount] = nil
        if !fitting.dropped.isEmpty {
            let note = "; dropped what AMQP cannot carry: " + fitting.dropped.joined(separator: ", ")
            fitted.headers[HeaderName.error] = AMQPLimits.truncating(reason + note, toBytes: Self.maxReasonBytes)
        }
        return fitted
    }

    /// `properties` without the headers of a move, and the queue the message was moved out of when they name one.
    public static func unmarking(
        _ properties: MessageProperties
    ) -> (properties: MessageProperties, originalQueue: String?) {
        var stripped = properties
        for name in headerNames { stripped.headers[name] = nil }
        return (stripped, properties.headers[HeaderName.originalQueue])
    }
}
