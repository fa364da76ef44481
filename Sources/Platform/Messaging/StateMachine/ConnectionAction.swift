import Logging

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
    /// Fail the caller of ``Publisher/messageCount(of:)`` request `requestID`.
    case failCount(requestID: UInt64, MessagingError)

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
        case .connect, .reportConnected, .reportConnectFailed, .stopWithError, .backOff, .abandonConnection,
            .startDrainTimer, .closeConnection, .finish, .log, .reportBlocked, .reportUnblocked, .completeDeclaration,
            .failDeclaration, .failCount, .completePublish, .failPublish, .cancelPublish, .yieldDelivery,
            .finishDeliveries:
            false
        }
    }
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
