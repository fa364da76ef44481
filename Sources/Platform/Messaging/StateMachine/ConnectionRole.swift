import Logging

/// Publishing or consuming: the half of a ``ConnectionStateMachine`` that differs between a ``Publisher`` and a
/// ``Consumer``. The connection's life cycle (connect, back off, reconnect, close) is shared; a role only sees its
/// channel open, carry its traffic, and close.
///
/// Like the machine, a role is pure: it never calls rabbitmq-c, never blocks and never resumes a caller. It answers
/// every event with the ``ConnectionAction``s the ``ConnectionDriver`` performs.
protocol ConnectionRole: Sendable {
    /// What async callers ask of this role through the mailbox (publish, settle).
    associatedtype Command: Sendable

    /// `publisher` or `consumer`: the `role` label of `amqp_reconnects_total` and the thread's name.
    static var name: String { get }

    /// How channel 1 is set up after the queues are declared, on every connect.
    var setupSteps: [SetupStep] { get }

    /// Whether nothing is left to finish before a shutting-down connection may close.
    var isDrained: Bool { get }

    /// A connection was made (number `generation`, counting from 1) and set up with ``setupSteps``.
    mutating func channelOpened(generation: UInt64, consumerTag: String?) -> [ConnectionAction]

    /// A caller asked for something.
    mutating func commandReceived(_ command: Command) -> [ConnectionAction]

    /// A caller gave up waiting for request `requestID`; withdraw it if it has not started.
    mutating func cancelAsked(requestID: UInt64) -> [ConnectionAction]

    /// A frame for this role arrived. Throwing means the connection cannot continue (the frame makes no sense here).
    mutating func frameRead(_ frame: IncomingFrame) throws(MessagingError) -> [ConnectionAction]

    /// The ``ConnectionAction/sendPublish(_:)`` asked for last went on the wire.
    mutating func publishSent() -> [ConnectionAction]

    /// The ``ConnectionAction/sendPublish(_:)`` asked for last could not be encoded; nothing was sent.
    mutating func publishRefused(_ error: MessagingError) -> [ConnectionAction]

    /// The broker stopped (`blocked` true: `connection.blocked`, a memory or disk alarm) or resumed
    /// (`connection.unblocked`) reading what this connection publishes.
    mutating func flowControl(blocked: Bool) -> [ConnectionAction]

    /// The connection is gone; whatever depended on it fails or is forgotten.
    mutating func channelLost(_ error: MessagingError) -> [ConnectionAction]

    /// Shutdown was asked: take no new work; finish what can be finished (see ``isDrained``).
    mutating func shutdownAsked() -> [ConnectionAction]

    /// A shutting-down connection waited its drain timeout (half its shutdown timeout) and is closing anyway.
    mutating func drainTimedOut() -> [ConnectionAction]

    /// The role's last event: fail what is left and end what callers read.
    mutating func stop() -> [ConnectionAction]

    /// The driver's clock reads `now` (reported on every turn of its loop, before anything else). Returns why the
    /// connection must be given up, if a deadline of the role has passed.
    mutating func timePassed(now: ContinuousClock.Instant) -> MessagingError?

    /// The earliest deadline the role watches, by which the driver reports ``timePassed(now:)`` again.
    var nextDeadline: ContinuousClock.Instant? { get }
}

extension ConnectionRole {
    /// No deadline: time changes nothing.
    mutating func timePassed(now: ContinuousClock.Instant) -> MessagingError? { nil }

    /// No deadline.
    var nextDeadline: ContinuousClock.Instant? { nil }
}
