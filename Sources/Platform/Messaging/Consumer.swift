public import Logging
public import ServiceLifecycle

/// One AMQP connection consuming one queue with manual acks and a prefetch count, owned by a dedicated thread.
public final class Consumer: Service, Sendable {
    private let loop: ConnectionLoop
    /// The deliveries, across reconnects, for one reader. Finishes when ``run()`` returns.
    public let deliveries: AsyncStream<Delivery>

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
        let (stream, continuation) = AsyncStream.makeStream(of: Delivery.self, bufferingPolicy: .unbounded)
        deliveries = stream
        loop = ConnectionLoop(
            configuration: configuration,
            role: .consumer(queue: queue, prefetch: max(1, prefetch), deliveries: continuation),
            declaring: [queue] + queues, logger: logger)
    }

    /// Connects with retry, sets `basic.qos`, starts `basic.consume` (manual acks) and delivers until cancelled or
    /// graceful shutdown; then cancels the consumer, sends the acks handed over so far, and closes. Unacked
    /// deliveries go back to the queue. May be called once.
    public func run() async throws {
        try await loop.run()
    }

    /// Acknowledges `delivery` (and, with `multiple`, every earlier delivery of the same connection). Does not
    /// block. An ack for a delivery from an earlier connection is dropped: the broker redelivers that message.
    public func ack(_ delivery: Delivery, multiple: Bool = false) {
        loop.settle(delivery, .ack(multiple: multiple))
    }

    /// Rejects `delivery`; with `requeue` the broker delivers it again, otherwise it drops (or dead-letters) it.
    public func reject(_ delivery: Delivery, requeue: Bool) {
        loop.settle(delivery, .reject(requeue: requeue))
    }

    /// Whether the connection is up and consuming.
    public var isConnected: Bool { loop.isConnected }
}
