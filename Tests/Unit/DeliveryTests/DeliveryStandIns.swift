import Foundation
import Logging
import Synchronization

@testable import Delivery
@testable import Messaging

/// What happened to deliveries and moves, in order, as the stand-ins below saw it.
enum Step: Hashable {
    /// A publish the broker confirmed, to this queue.
    case published(queue: String)
    /// A publish the broker refused.
    case publishFailed
    /// The delivery with this message id was acked.
    case acked(String)
    /// These queues were declared.
    case declared([String])
}

/// The journal both stand-ins write to, so a test can check the order of publishes and acks.
final class Journal: Sendable {
    private let steps = Mutex<[Step]>([])
    private let messages = Mutex<[OutboundMessage]>([])

    func record(_ step: Step) { steps.withLock { $0.append(step) } }

    func record(_ message: OutboundMessage) { messages.withLock { $0.append(message) } }

    /// Everything recorded so far.
    var all: [Step] { steps.withLock { $0 } }

    /// The confirmed messages, in order.
    var published: [OutboundMessage] { messages.withLock { $0 } }
}

/// A consumer stand-in: the test puts deliveries in, then finishes the stream so that the loop's `run()` returns once
/// every delivery was handled.
final class ScriptedSource: DeliverySource {
    let deliveries: AsyncStream<Delivery>
    private let continuation: AsyncStream<Delivery>.Continuation
    private let journal: Journal

    init(_ journal: Journal, deliveries: [Delivery]) {
        self.journal = journal
        (self.deliveries, continuation) = AsyncStream.makeStream(of: Delivery.self)
        for delivery in deliveries { continuation.yield(delivery) }
        continuation.finish()
    }

    func ack(_ delivery: Delivery, multiple: Bool) {
        journal.record(.acked(delivery.properties.messageID ?? ""))
    }
}

/// A publisher stand-in that refuses its first `failures` publishes (as `refusal`), then confirms.
final class ScriptedPublisher: ConfirmedPublisher {
    struct Refused: Error {}

    private let journal: Journal
    private let failuresLeft: Mutex<Int>
    private let refusal: any Error

    init(_ journal: Journal, failures: Int = 0, refusal: any Error = Refused()) {
        self.journal = journal
        failuresLeft = Mutex(failures)
        self.refusal = refusal
    }

    func declare(_ queues: [String]) async throws {
        journal.record(.declared(queues))
    }

    func publish(_ messages: [OutboundMessage]) async throws {
        let refuse = failuresLeft.withLock { left in
            defer { left = max(0, left - 1) }
            return left > 0
        }
        if refuse {
            journal.record(.publishFailed)
            throw refusal
        }
        for message in messages {
            journal.record(message)
            journal.record(.published(queue: message.queue))
        }
    }
}

/// A delivery as the consumer would hand it over.
func delivery(
    id: String, body: String = "{}", headers: [String: String] = [:], queue: String = "queue_test",
    redelivered: Bool = false
) -> Delivery {
    Delivery(
        body: Array(body.utf8), properties: MessageProperties(messageID: id, headers: headers),
        redelivered: redelivered, queue: queue, deliveryTag: 1, generation: 1)
}

/// A logger that keeps the test output quiet.
let quietLogger: Logger = {
    var logger = Logger(label: "DeliveryTests")
    logger.logLevel = .critical
    return logger
}()
