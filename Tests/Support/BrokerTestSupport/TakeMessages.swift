import Logging
public import Messaging

/// Takes up to `count` messages from `queue` (acking them), waiting at most `timeout`; returns what it got.
public func takeMessages(
    _ count: Int, from queue: String, brokerURL: String, timeout: Duration = .seconds(20)
) async throws -> [Delivery] {
    let consumer = Consumer(
        configuration: try BrokerConfiguration(url: brokerURL), queue: queue, prefetch: UInt16(min(count, 500)),
        logger: Logger(label: "take"))
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
