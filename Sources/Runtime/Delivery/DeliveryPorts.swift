import Messaging

/// Where the ``DeliveryLoop`` takes deliveries from and acks them: Messaging's `Consumer` (a stand-in in tests).
protocol DeliverySource: Sendable {
    /// The deliveries, in batches of those available together (each in delivery-tag order), for one reader; the
    /// loop ends when the stream finishes.
    var batches: AsyncStream<[Delivery]> { get }
    /// Acknowledges `delivery` (and, with `multiple`, every earlier one of its connection); does not block.
    func ack(_ delivery: Delivery, multiple: Bool)
}

/// Where the ``DeliveryLoop`` moves messages: Messaging's `Publisher` (a stand-in in tests).
protocol ConfirmedPublisher: Sendable {
    /// Returns once the broker confirmed every message; throws when any was not.
    func publish(_ messages: [OutboundMessage]) async throws
    /// Declares queues (durable, no arguments), now and on every reconnect.
    func declare(_ queues: [String]) async throws
    /// The frame size agreed with the broker: what a republished message's properties are fitted to.
    var frameMax: Int { get }
}

extension Consumer: DeliverySource {}

extension Publisher: ConfirmedPublisher {}
