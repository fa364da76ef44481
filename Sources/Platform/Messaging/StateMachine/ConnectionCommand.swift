/// What an async caller left in the mailbox, in the order it was left.
enum ConnectionCommand<RoleCommand: Sendable>: Sendable {
    /// A command for the role (publish, settle).
    case role(RoleCommand)
    /// Declare `queues` now and on every reconnect; answer request `requestID` once the broker declared them.
    case declare(requestID: UInt64, queues: [String])
    /// The caller of request `requestID` stopped waiting.
    case cancel(requestID: UInt64)
    /// Declare `queue` (durable, no arguments) on the live connection and answer request `requestID` with the number
    /// of messages ready in it.
    case count(requestID: UInt64, queue: String)
}

/// Settlement of a consumed message.
enum Settlement: Equatable, Sendable {
    /// `basic.ack`; with `multiple`, every earlier delivery of the channel too.
    case ack(multiple: Bool)
    /// `basic.reject`; with `requeue` the broker delivers the message again.
    case reject(requeue: Bool)
}
