public import Logging
public import ServiceLifecycle

/// One AMQP connection consuming one queue with manual acks and a prefetch count, owned by a dedicated thread.
public final class Consumer: Service, Sendable {
    private let mailbox = ConnectionMailbox<ConsumerStateMachine.Command>()
    private let configuration: BrokerConfiguration
    private let queue: String
    private let prefetch: UInt16
    private let queues: [String]
    private let logger: Logger
    private let continuation: AsyncStream<[Delivery]>.Continuation
    /// The deliveries, in the batches the connection's thread read together (each in delivery-tag order), across
    /// reconnects, for one reader: read this or ``deliveries``, not both. Finishes when ``run()`` returns.
    public let batches: AsyncStream<[Delivery]>
    /// The deliveries one by one, across reconnects, for one reader: read this or ``batches``, not both. Finishes
    /// when ``run()`` returns.
    public var deliveries: Deliveries { Deliveries(batches: batches) }

    /// Creates a consumer; nothing happens until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: Where to connect.
    ///   - queue: The queue to consume; declared (durable, no arguments) on every (re)connect.
    ///   - prefetch: Most unacknowledged deliveries the broker sends ahead (`basic.qos`).
    ///   - queues: More queues to declare on every (re)connect.
    ///   - logger: Connection events are logged here, with the password redacted.
    public init(
        configuration: BrokerConfiguration, queue: String, prefetch: UInt16 = 256, declaring queues: [String] = [],
        logger: Logger
    ) {
        let (stream, continuation) = AsyncStream.makeStream(of: [Delivery].self, bufferingPolicy: .unbounded)
        batches = stream
        self.continuation = continuation
        self.configuration = configuration
        self.queue = queue
        self.prefetch = max(1, prefetch)
        self.queues = [queue] + queues
        self.logger = logger
    }

    /// Connects with retry, sets `basic.qos`, starts `basic.consume` (manual acks) and delivers until cancelled or
    /// graceful shutdown; then cancels the consumer, keeps sending the acks handed over until the broker confirms
    /// the cancel, and closes, within the configuration's `shutdownTimeout`. Unacked deliveries go back to the queue. May be called once.
    public func run() async throws {
        try await ConnectionDriver.run(
            role: ConsumerStateMachine(queue: queue, prefetch: prefetch), declaring: queues, mailbox: mailbox,
            configuration: configuration, logger: logger, deliveries: continuation)
    }

    /// Acknowledges `delivery` (and, with `multiple`, every earlier delivery of the same connection). Does not
    /// block. An ack for a delivery from an earlier connection is dropped: the broker redelivers that message.
    public func ack(_ delivery: Delivery, multiple: Bool = false) {
        settle(delivery, .ack(multiple: multiple))
    }

    /// Rejects `delivery`; with `requeue` the broker delivers it again, otherwise it drops (or dead-letters) it.
    public func reject(_ delivery: Delivery, requeue: Bool) {
        settle(delivery, .reject(requeue: requeue))
    }

    /// Whether the connection is up and consuming.
    public var isConnected: Bool { mailbox.isConnected }

    /// The type of the queue consumed, as configured (a quorum queue counts deliveries in `x-delivery-count`).
    public var queueType: QueueType { configuration.queueType }

    private func settle(_ delivery: Delivery, _ settlement: Settlement) {
        mailbox.post(.role(.settle(deliveryTag: delivery.deliveryTag, generation: delivery.generation, settlement)))
    }
}

extension Consumer {
    /// A consumer's ``Consumer/batches`` taken apart into single deliveries, in order.
    public struct Deliveries: AsyncSequence, Sendable {
        /// The element: one delivery.
        public typealias Element = Delivery
        /// Never fails.
        public typealias Failure = Never

        let batches: AsyncStream<[Delivery]>

        /// Starts reading; the one reader of the consumer's stream.
        public func makeAsyncIterator() -> Iterator {
            Iterator(batches: batches.makeAsyncIterator())
        }

        /// Hands out the deliveries of one batch before it waits for the next.
        public struct Iterator: AsyncIteratorProtocol {
            var batches: AsyncStream<[Delivery]>.Iterator
            var current: [Delivery] = []
            var index = 0

            /// The next delivery; nil once the consumer has stopped.
            public mutating func next() async -> Delivery? {
                while index == current.count {
                    guard let batch = await batches.next() else { return nil }
                    current = batch
                    index = 0
                }
                defer { index += 1 }
                return current[index]
            }

            /// The next delivery; nil once the consumer has stopped.
            public mutating func next(isolation actor: isolated (any Actor)?) async -> Delivery? {
                while index == current.count {
                    guard let batch = await batches.next(isolation: actor) else { return nil }
                    current = batch
                    index = 0
                }
                defer { index += 1 }
                return current[index]
            }
        }
    }
}
