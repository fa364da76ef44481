import Logging
public import Messaging

/// Takes up to `count` messages from `queue` (acking them), waiting at most `timeout`; returns what it got.
///
/// The queue is declared as `queueType`: give the type the system under test declares its queues with (its
/// `AMQP_QUEUE_TYPE`), since the broker refuses to declare an existing queue as another type.
public func takeMessages(
    _ count: Int, from queue: String, brokerURL: String, queueType: QueueType = .classic,
    timeout: Duration = .seconds(20)
) async throws -> [Delivery] {
    var configuration = try BrokerConfiguration(url: brokerURL)
    configuration.queueType = queueType
    let consumer = Consumer(
        configuration: configuration, queue: queue, prefetch: UInt16(min(count, 500)), logger: Logger(label: "take"))
    return try await withThrowingTaskGroup(of: [Delivery]?.self) { group in
        group.addTask {
            try await consumer.run()
            return nil
        }
        group.addTask {
            var taken: [Delivery] = []
            for await delivery in consumer.deliveries {
                consumer.ack(delivery)
                taken.append(delivery)
                if taken.count == count { break }
            }
            return taken
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return []
        }
        var result: [Delivery] = []
        for try await value in group {
            if let value {
                result = value
                break
            }
        }
        // Cancelling stops the consumer, which sends the acks it was handed before it closes.
        group.cancelAll()
        return result
    }
}

/// Publishes `messages` with confirms through a publisher of its own, declaring their queues and `alsoDeclaring` as
/// `queueType` (the type the system under test declares its queues with); returns once the broker confirmed all.
public func publishMessages(
    _ messages: [OutboundMessage], brokerURL: String, queueType: QueueType = .classic, alsoDeclaring: [String] = []
) async throws {
    var configuration = try BrokerConfiguration(url: brokerURL)
    configuration.queueType = queueType
    let queues = Array(Set(messages.map(\.queue) + alsoDeclaring))
    let publisher = Publisher(configuration: configuration, declaring: queues, logger: Logger(label: "test"))
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await publisher.run() }
        try await publisher.publish(messages)
        group.cancelAll()
    }
}
