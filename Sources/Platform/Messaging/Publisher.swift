public import Logging
public import ServiceLifecycle

/// One AMQP connection for publishing with publisher confirms, owned by a dedicated thread.
///
/// Run it as a `Service` (or call ``run()`` in a task); ``publish(_:)`` may be called from any task, before or
/// during `run()`.
public final class Publisher: Service, Sendable {
    private let mailbox = ConnectionMailbox<PublisherStateMachine.Command>()
    private let configuration: BrokerConfiguration
    private let queues: [String]
    private let confirmWindow: Int
    private let logger: Logger

    /// Creates a publisher; nothing happens until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: Where to connect.
    ///   - queues: Queues declared (durable, no arguments) on every (re)connect.
    ///   - confirmWindow: Most messages sent but not yet confirmed at any time.
    ///   - logger: Connection events are logged here, with the password redacted.
    public init(
        configuration: BrokerConfiguration, declaring queues: [String], confirmWindow: Int = 1024, logger: Logger
    ) {
        self.configuration = configuration
        self.queues = queues
        self.confirmWindow = max(1, confirmWindow)
        self.logger = logger
    }

    /// Connects (retrying with backoff while the broker is absent), declares the queues on every (re)connect,
    /// enables `confirm.select` and serves publishes until cancelled or graceful shutdown. Before returning it waits
    /// for outstanding confirms and closes, within the configuration's `shutdownTimeout`. May be called once.
    public func run() async throws {
        try await ConnectionDriver.run(
            role: PublisherStateMachine(confirmWindow: confirmWindow, confirmTimeout: configuration.confirmTimeout),
            declaring: queues, mailbox: mailbox,
            configuration: configuration, logger: logger)
    }

    /// Publishes `messages` in order and returns once the broker confirmed every one of them.
    ///
    /// A call with a message that AMQP cannot carry (see ``AMQPLimits``) fails at once with `.unencodable`; none of
    /// its messages is sent and the connection is not affected.
    ///
    /// Concurrent calls share the connection and are pipelined inside the confirm window. While disconnected the
    /// call waits for the connection (cancellable until its first message is sent). Throws ``MessagingError`` with
    /// `.nacked` if any message was nacked, `.unroutable` if any came back with `basic.return`, `.connectionLost`
    /// if the connection dropped before all were confirmed (retry: the broker may have some of them), also when a
    /// confirm took longer than the configuration's `confirmTimeout` (the connection is then given up for the next
    /// node), and `.closed` once the publisher is stopping.
    public func publish(_ messages: [OutboundMessage]) async throws {
        guard !messages.isEmpty else { return }
        try await mailbox.request(cancellable: true, closedDetail: "the publisher is shutting down") { id in
            .role(.publish(requestID: id, messages: messages))
        }
    }

    /// Declares more queues (durable, no arguments) on the live connection and on every reconnect after it;
    /// returns once the broker declared them. Waits for the connection while disconnected.
    public func declare(_ queues: [String]) async throws {
        guard !queues.isEmpty else { return }
        try await mailbox.request(cancellable: false, closedDetail: "the connection is shutting down") { id in
            .declare(requestID: id, queues: queues)
        }
    }

    /// Declares `queue` (durable, no arguments) on the live connection and returns the number of messages ready in
    /// it (not those delivered to a consumer and not yet acked). Throws `.notConnected` while disconnected.
    public func messageCount(of queue: String) async throws -> Int {
        try await mailbox.requestCount(closedDetail: "the connection is shutting down") { id in
            .count(requestID: id, queue: queue)
        }
    }

    /// Whether the connection is up and ready to publish.
    public var isConnected: Bool { mailbox.isConnected }

    /// The frame size the broker agreed to on the current connection (``AMQPLimits/frameMax`` until the first one):
    /// what a message's properties must fit in (``MessageProperties/fittedToAMQP(frameMax:keeping:)``).
    public var frameMax: Int { mailbox.frameMax }

    /// Whether the broker blocks the connection (`connection.blocked`: a memory or disk alarm). Publishes wait
    /// meanwhile, and are sent once the broker unblocks it.
    public var isBlocked: Bool { mailbox.isBlocked }
}
