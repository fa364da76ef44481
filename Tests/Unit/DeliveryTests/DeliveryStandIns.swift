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

/// What a source saw acked: every `basic.ack` as sent, and the deliveries each settled (all unsettled ones up to its
/// tag, with `multiple`), as the broker would.
final class AckLedger: Sendable {
    private struct State {
        var sent: [(tag: UInt64, multiple: Bool)] = []
        var settled: Set<UInt64> = []
    }

    private let journal: Journal
    private let known = Mutex<[Delivery]>([])
    private let state = Mutex(State())

    init(_ journal: Journal) { self.journal = journal }

    /// Makes `deliveries` known, so that a `multiple` ack can settle them.
    func handedOver(_ deliveries: [Delivery]) { known.withLock { $0 += deliveries } }

    func ack(_ delivery: Delivery, multiple: Bool) {
        let candidates = known.withLock { $0 }.filter { $0.generation == delivery.generation }
        let settledNow: [Delivery] = state.withLock { state in
            state.sent.append((delivery.deliveryTag, multiple))
            let covered =
                multiple
                ? candidates.filter { $0.deliveryTag <= delivery.deliveryTag && !state.settled.contains($0.deliveryTag) }
                : [delivery]
            for settled in covered { state.settled.insert(settled.deliveryTag) }
            return covered
        }
        for settled in settledNow { journal.record(.acked(settled.properties.messageID ?? "")) }
    }

    /// Every `basic.ack` sent, in order.
    var sent: [(tag: UInt64, multiple: Bool)] { state.withLock { $0.sent } }
}

/// A consumer stand-in: the test puts deliveries in, then finishes the stream so that the loop's `run()` returns once
/// every delivery was handled. Each delivery is handed over alone, or all in one batch with `batched`.
final class ScriptedSource: DeliverySource {
    let batches: AsyncStream<[Delivery]>
    let ledger: AckLedger

    init(_ journal: Journal, deliveries: [Delivery], batched: Bool = false) {
        ledger = AckLedger(journal)
        ledger.handedOver(deliveries)
        let continuation: AsyncStream<[Delivery]>.Continuation
        (batches, continuation) = AsyncStream.makeStream(of: [Delivery].self)
        if batched {
            continuation.yield(deliveries)
        } else {
            for delivery in deliveries { continuation.yield([delivery]) }
        }
        continuation.finish()
    }

    func ack(_ delivery: Delivery, multiple: Bool) {
        ledger.ack(delivery, multiple: multiple)
    }
}

/// A publisher stand-in that refuses its first `failures` publishes (as `refusal`), then confirms; like the real
/// one, it refuses as `.unencodable` a message whose properties do not fit its `frameMax`.
final class ScriptedPublisher: ConfirmedPublisher {
    struct Refused: Error {}

    private let journal: Journal
    private let failuresLeft: Mutex<Int>
    private let refusal: any Error
    let frameMax: Int

    init(_ journal: Journal, failures: Int = 0, refusal: any Error = Refused(), frameMax: Int = AMQPLimits.frameMax) {
        self.journal = journal
        failuresLeft = Mutex(failures)
        self.refusal = refusal
        self.frameMax = frameMax
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
        if let message = messages.first(where: { !$0.properties.fittedToAMQP(frameMax: frameMax).dropped.isEmpty }) {
            journal.record(.publishFailed)
            throw MessagingError(.unencodable, "cannot publish to '\(message.queue)': properties do not fit")
        }
        for message in messages {
            journal.record(message)
            journal.record(.published(queue: message.queue))
        }
    }
}

/// The last delivery tag handed out by `delivery(...)`: tags ascend, as on one channel.
private let lastTag = Atomic<UInt64>(0)

/// A delivery as the consumer would hand it over, with the next delivery tag.
func delivery(
    id: String, body: String = "{}", headers: [String: String] = [:], queue: String = "queue_test",
    redelivered: Bool = false
) -> Delivery {
    Delivery(
        body: Array(body.utf8), properties: MessageProperties(messageID: id, headers: headers),
        redelivered: redelivered, queue: queue, deliveryTag: lastTag.add(1, ordering: .relaxed).newValue,
        generation: 1)
}

/// A logger that keeps the test output quiet.
let quietLogger: Logger = {
    var logger = Logger(label: "DeliveryTests")
    logger.logLevel = .critical
    return logger
}()
