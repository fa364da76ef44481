import Foundation

/// A `queue.declare` that RabbitMQ refused with 406 PRECONDITION_FAILED: the queue exists with another type or other
/// arguments. Turns the broker's reply into one sentence naming the queue, both types, and how to migrate.
///
/// RabbitMQ 3.10 words a type mismatch as
/// `PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received the value 'quorum' of
/// type 'longstr' but current is none` (an existing classic queue declared as quorum); `current is the value 'quorum'`
/// names the type of an existing queue of another type.
struct QueueConflict: Equatable {
    /// The queue declared.
    var queue: String
    /// The type it was declared with.
    var declared: QueueType
    /// The broker's reply text.
    var brokerText: String

    /// The type the queue has, if the broker's text says (`classic` when it has no `x-queue-type`).
    var existingType: String? {
        guard brokerText.contains("'x-queue-type'") else { return nil }
        guard let current = brokerText.range(of: "current is ") else { return nil }
        let rest = brokerText[current.upperBound...]
        if rest.hasPrefix("none") { return "classic" }
        guard rest.hasPrefix("the value '") else { return nil }
        let value = rest.dropFirst("the value '".count)
        return value.firstIndex(of: "'").map { String(value[..<$0]) }
    }

    /// The error a connection reports: code `.queueConflict`, detail one line.
    var error: MessagingError {
        let problem: String
        if let existing = existingType, existing != declared.rawValue {
            problem =
                "queue '\(queue)' exists as a \(existing) queue but this service declares it as a \(declared) queue"
                + " (AMQP_QUEUE_TYPE=\(declared))"
        } else {
            problem = "queue '\(queue)' exists with other arguments than this service declares (\(declared), durable)"
        }
        let migration =
            "a queue cannot change type in place: keep AMQP_QUEUE_TYPE as the queues are, or migrate by draining"
            + " (stop the publishers, let the consumers empty the queue, delete it, start again) or by moving to a"
            + " new vhost created with --default-queue-type \(declared) and shovelling the messages there"
            + " (docs/OPERATIONS.md: Queue types)"
        return MessagingError(.queueConflict, "\(problem); \(migration). Broker: 406 \(brokerText)")
    }
}
