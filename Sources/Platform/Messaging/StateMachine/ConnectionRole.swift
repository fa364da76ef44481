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

/// One synchronous step of setting up a fresh connection, after login and `channel.open`.
enum SetupStep: Equatable, Sendable {
    /// `queue.declare`: durable, not exclusive, not auto-delete, of the configured ``QueueType`` (a classic queue
    /// without arguments).
    case declare(queue: String)
    /// `confirm.select`: the broker acks or nacks every publish, numbered from 1.
    case selectConfirms
    /// `basic.qos` with a per-consumer prefetch count.
    case setPrefetch(UInt16)
    /// `basic.consume` with manual acks; yields the consumer tag.
    case consume(queue: String)
}

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

/// What the ``ConnectionDriver`` must do, as decided by a ``ConnectionStateMachine``. Actions are performed in the
/// order given; those that need the connection (see ``needsConnection``) are dropped if it fails before their turn.
enum ConnectionAction: Sendable {
    // MARK: Life cycle

    /// Open a connection (TCP or TLS, login, channel 1) to broker node number `node` (0-based) and run `steps`;
    /// report ``ConnectionStateMachine/connected(consumerTag:)`` or ``ConnectionStateMachine/connectFailed(_:)``.
    case connect(steps: [SetupStep], node: Int)
    /// Log that connection number `generation` to node number `node` is up; count it in `amqp_reconnects_total` if it
    /// is a reconnect.
    case reportConnected(generation: UInt64, isReconnect: Bool, node: Int)
    /// Log that connection attempt number `attempt`, to node number `node`, failed.
    case reportConnectFailed(attempt: Int, node: Int, MessagingError)
    /// The connection cannot work (a queue of another type exists): log `error` and make `run()` throw it once the
    /// ``finish`` that follows has stopped the loop.
    case stopWithError(MessagingError)
    /// Wait `delay`, then report ``ConnectionStateMachine/backoffElapsed()`` (earlier for commands and shutdown).
    case backOff(Duration)
    /// Drop the broken connection without a handshake and log why; `reconnecting` says whether another will follow.
    case abandonConnection(MessagingError, reconnecting: Bool)
    /// Answer the broker's `channel.close` / `connection.close`.
    case replyCloseOk(isConnection: Bool)
    /// Report ``ConnectionStateMachine/drainDeadlinePassed()`` if the connection is still open after `timeout`.
    case startDrainTimer(Duration)
    /// Close channel and connection politely.
    case closeConnection
    /// The thread's work is done: stop the loop and let `run()` return.
    case finish
    /// A log line that belongs to a decision of the machine.
    case log(Logger.Level, String)
    /// Log and publish (gauge `amqp_blocked`, ``Publisher/isBlocked``) that the broker blocked the connection.
    case reportBlocked(reason: String)
    /// Log and publish that the connection is no longer blocked, because of `cause`.
    case reportUnblocked(cause: String)

    // MARK: Declarations

    /// `queue.declare` each of `queues` (an RPC); report ``ConnectionStateMachine/queuesDeclared(requestID:)``
    /// or ``ConnectionStateMachine/declarationFailed(requestID:_:)``.
    case declare(requestID: UInt64, queues: [String])
    /// Resume the caller of ``Publisher/declare(_:)`` request `requestID`.
    case completeDeclaration(requestID: UInt64)
    /// Fail the caller of ``Publisher/declare(_:)`` request `requestID`.
    case failDeclaration(requestID: UInt64, MessagingError)
    /// `queue.declare` of `queue` (an RPC); answer request `requestID` with the messages ready in it, or fail it and
    /// report ``ConnectionStateMachine/connectionLost(_:)``.
    case countMessages(requestID: UInt64, queue: String)

    // MARK: Publishing

    /// `basic.publish` (mandatory) of one message; report ``ConnectionStateMachine/publishSent()`` or
    /// ``ConnectionStateMachine/publishRefused(_:)``. At most one is outstanding at a time.
    case sendPublish(OutboundMessage)
    /// Resume the caller of publish request `requestID`: every message was confirmed.
    case completePublish(requestID: UInt64)
    /// Fail the caller of publish request `requestID`.
    case failPublish(requestID: UInt64, MessagingError)
    /// Fail the caller of publish request `requestID` with `CancellationError` (it never started).
    case cancelPublish(requestID: UInt64)

    // MARK: Consuming

    /// `basic.ack`.
    case ack(deliveryTag: UInt64, multiple: Bool)
    /// `basic.reject`.
    case reject(deliveryTag: UInt64, requeue: Bool)
    /// `basic.cancel` (not waiting: the `cancel-ok` comes as a frame).
    case cancelConsumer(consumerTag: String)
    /// Hand a delivery to the reader of ``Consumer/deliveries``.
    case yieldDelivery(Delivery)
    /// End ``Consumer/deliveries``.
    case finishDeliveries

    /// Whether the action talks to the connection, so that it means nothing once the connection has failed.
    var needsConnection: Bool {
        switch self {
        case .declare, .countMessages, .sendPublish, .ack, .reject, .cancelConsumer, .replyCloseOk: true
        default: false
        }
    }
}
