/// A frame from the broker as the state machine sees it: copied out of rabbitmq-c, with the content of a delivery or
/// return already read.
enum IncomingFrame: Sendable {
    /// `basic.deliver` and its content.
    case deliver(deliveryTag: UInt64, redelivered: Bool, body: [UInt8], properties: MessageProperties)
    /// `basic.ack` of a publish (with `multiple`, of every one up to the tag).
    case ack(deliveryTag: UInt64, multiple: Bool)
    /// `basic.nack` of a publish (with `multiple`, of every one up to the tag).
    case nack(deliveryTag: UInt64, multiple: Bool)
    /// `basic.return` of a mandatory publish that no queue took (its content is read and dropped).
    case returned(routingKey: String, replyCode: UInt16, replyText: String)
    /// `basic.cancel` from the broker: the consumer was cancelled (its queue was deleted).
    case cancelledByBroker
    /// `basic.cancel-ok`: the broker stopped delivering after our `basic.cancel`.
    case cancelOk
    /// `channel.close` or `connection.close` from the broker.
    case close(BrokerClose)
    /// `connection.blocked`: the broker stops reading what we publish (a memory or disk alarm), for `reason`.
    case blocked(reason: String)
    /// `connection.unblocked`: the alarm is over.
    case unblocked
    /// Anything else, described for a debug log.
    case other(String)
}
