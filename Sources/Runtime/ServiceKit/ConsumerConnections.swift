import Common
public import Logging
public import Messaging

/// The broker connections of a service that consumes one queue: a consumer of the queue, and a publisher that
/// declares `<queue>.dead` and the queues the service's handler publishes to.
///
/// Made first (``ServiceAssembly/consume(_:service:declaring:broker:prefetch:)``), so that the handler can publish through
/// ``publisher``; then ``ServiceAssembly/deliver(_:maxAttempts:handler:batchHandler:)`` runs the handler.
public struct ConsumerConnections: Sendable {
    /// The queue consumed.
    public let queue: String
    /// The publisher connection, named `<service> publisher`; dead letters go through it too.
    public let publisher: Publisher
    /// The consumer connection, named `<service> consumer`.
    let consumer: Consumer
    /// Deliveries the broker may push before they are acked; the delivery loop handles as many at once.
    let prefetch: UInt16

    init(
        service name: String, queue: String, declaring: [String], broker: BrokerConfiguration, prefetch: UInt16,
        logger: Logger
    ) {
        var publishing = broker
        publishing.connectionName = "\(name) publisher"
        var consuming = broker
        consuming.connectionName = "\(name) consumer"
        self.queue = queue
        self.prefetch = prefetch
        publisher = Publisher(
            configuration: publishing, declaring: declaring + [QueueName.deadLetter(for: queue)], logger: logger)
        consumer = Consumer(configuration: consuming, queue: queue, prefetch: prefetch, logger: logger)
    }

    /// Whether both connections are up.
    var isConnected: Bool { publisher.isConnected && consumer.isConnected }
}
