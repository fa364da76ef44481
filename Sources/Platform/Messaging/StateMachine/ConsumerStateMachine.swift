import Logging

/// The consumer's half of a ``ConnectionStateMachine``: deliveries go to the reader stamped with the connection they
/// came on; settlements go back only on that connection (a delivery tag means nothing on another channel, and the
/// broker redelivers what the lost one held). On shutdown the consumer is cancelled and settlements keep flowing
/// until the broker's `cancel-ok`; deliveries that arrive meanwhile are left unacked for the broker to redeliver.
///
/// Deliveries read in one turn of the connection's thread reach the reader as one batch (``ConnectionDriver``); the
/// reader decides when an ack may be `multiple` (Delivery's `AckTracker`), this machine passes it on as it is.
struct ConsumerStateMachine: ConnectionRole {
    /// What consuming callers ask.
    enum Command: Sendable {
        /// Settle delivery `deliveryTag` of connection `generation`.
        case settle(deliveryTag: UInt64, generation: UInt64, Settlement)
    }

    private enum Channel {
        /// No connection.
        case closed
        /// Delivering on connection `generation`.
        case consuming(generation: UInt64, consumerTag: String)
        /// `basic.cancel` sent on connection `generation`; waiting for `cancel-ok`.
        case cancelling(generation: UInt64)
        /// `cancel-ok` received: nothing more arrives.
        case cancelled
    }

    static var name: String { "consumer" }

    /// The queue consumed.
    let queue: String
    /// Most unacknowledged deliveries the broker sends ahead.
    let prefetch: UInt16
    private var channel = Channel.closed

    init(queue: String, prefetch: UInt16) {
        precondition(prefetch > 0, "a prefetch of 0 would mean no limit")
        self.queue = queue
        self.prefetch = prefetch
    }

    var setupSteps: [SetupStep] { [.setPrefetch(prefetch), .consume(queue: queue)] }

    var isDrained: Bool {
        if case .cancelling = channel { false } else { true }
    }

    mutating func channelOpened(generation: UInt64, consumerTag: String?) -> [ConnectionAction] {
        guard let consumerTag else { preconditionFailure("a consumer's channel opens with a consumer tag") }
        channel = .consuming(generation: generation, consumerTag: consumerTag)
        return []
    }

    mutating func commandReceived(_ command: Command) -> [ConnectionAction] {
        switch command {
        case .settle(let tag, let generation, let settlement):
            switch channel {
            case .consuming(generation, _), .cancelling(generation):
                switch settlement {
                case .ack(let multiple): return [.ack(deliveryTag: tag, multiple: multiple)]
                case .reject(let requeue): return [.reject(deliveryTag: tag, requeue: requeue)]
                }
            case .closed, .consuming, .cancelling, .cancelled:
                return [
                    .log(
                        .debug,
                        "dropping settlement of delivery \(tag) from an earlier connection; it will be redelivered")
                ]
            }
        }
    }

    mutating func cancelAsked(requestID: UInt64) -> [ConnectionAction] { [] }

    mutating func frameRead(_ frame: IncomingFrame) throws(MessagingError) -> [ConnectionAction] {
        switch (frame, channel) {
        case (.deliver(let tag, let redelivered, let body, let properties), .consuming(let generation, _)):
            let delivery = Delivery(
                body: body, properties: properties, redelivered: redelivered, queue: queue, deliveryTag: tag,
                generation: generation)
            return [.yieldDelivery(delivery)]
        case (.deliver(let tag, _, _, _), .cancelling):
            return [.log(.debug, "dropping delivery \(tag) that arrived while cancelling; the broker redelivers it")]
        case (.cancelOk, .cancelling):
            channel = .cancelled
            return []
        case (.cancelledByBroker, _):
            throw MessagingError(.brokerClosed, "the broker cancelled the consumer (queue deleted?)")
        case (.ack, _), (.nack, _), (.returned, _):
            throw MessagingError(.protocolError, "a publisher confirm or return on a consumer connection")
        case (.deliver, _), (.cancelOk, _):
            throw MessagingError(.protocolError, "\(frame) while the consumer is \(channel)")
        case (.close, _), (.other, _), (.blocked, _), (.unblocked, _):
            preconditionFailure("\(frame) is handled by the connection")
        }
    }

    mutating func publishSent() -> [ConnectionAction] {
        preconditionFailure("a consumer sends no publishes")
    }

    mutating func publishRefused(_ error: MessagingError) -> [ConnectionAction] {
        preconditionFailure("a consumer sends no publishes")
    }

    mutating func channelLost(_ error: MessagingError) -> [ConnectionAction] {
        channel = .closed
        return []
    }

    mutating func shutdownAsked() -> [ConnectionAction] {
        guard case .consuming(let generation, let consumerTag) = channel else { return [] }
        channel = .cancelling(generation: generation)
        return [.cancelConsumer(consumerTag: consumerTag)]
    }

    mutating func drainTimedOut() -> [ConnectionAction] {
        [.log(.warning, "AMQP consumer did not cancel cleanly: no basic.cancel-ok in time")]
    }

    mutating func flowControl(blocked: Bool) -> [ConnectionAction] { [] }

    mutating func stop() -> [ConnectionAction] {
        channel = .closed
        return [.finishDeliveries]
    }
}
