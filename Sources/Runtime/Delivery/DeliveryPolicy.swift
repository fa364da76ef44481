import Common
public import EventCodec
import Foundation
import Messaging

/// Thrown by a delivery handler for a message that can never be processed (it does not parse, or fails
/// validation): the message goes to the dead-letter queue at once, without retries.
public struct InvalidMessage: Error, Sendable {
    /// Why, as it will appear in the `x-error` header.
    public var reason: String
    /// A short fixed code for the kind of failure, e.g. `invalid_json`: the `reason` label of
    /// `events_dead_lettered_total` (free text would make the label unbounded).
    public var code: String

    /// Creates the error.
    public init(_ reason: String, code: String = "invalid_message") {
        self.reason = reason
        self.code = code
    }

    /// A body that is not a valid event: `invalid_json` when it does not parse as a JSON object, else `invalid_event`.
    public init(_ error: EventDecodingError) {
        self.init(error.description, code: error.field == nil ? "invalid_json" : "invalid_event")
    }
}

/// When a consumed message is acked, retried or dead-lettered: the one place that decides, from how an attempt to
/// handle it ended. Pure: the ``DeliveryLoop`` carries the decisions out.
///
/// - The handler returned: ack.
/// - It threw ``InvalidMessage``: dead-letter at once with its reason and code, since retrying cannot help. The same
///   for a `MessagingError` `.unencodable` (what it would be published as cannot be carried by AMQP): code `unencodable`.
/// - It threw anything else: retry after the backoff's delay, until `maxAttempts` attempts have failed; then
///   dead-letter with code `max_attempts`, so a poison message neither blocks the queue nor loops forever.
/// - It threw ``DependencyUnavailable``: not an attempt (the message is not at fault); the loop holds it and retries
///   after ``probeDelay(attempt:)`` until the dependency is back. The same for a `MessagingError` that says the
///   broker could not confirm a publish (nacked, connection lost, not connected): dependency `broker`.
///
/// Attempts are counted where they survive a crash of the consumer and hold across competing instances, since a
/// message that kills the process (out of memory, a crash in decoding) never reaches `decide`. See
/// ``arrival(redelivered:headers:)``: the count travels with the message, in the broker's `x-delivery-count` on a
/// quorum queue, else in our `x-attempts` header.
///
/// Moving a message to the dead-letter queue is itself retried with the same backoff until the broker confirms it;
/// the original is acked only after that confirm.
struct DeliveryPolicy: Sendable {
    /// What to do after an attempt.
    enum Decision: Equatable {
        /// Processing is done: ack the delivery.
        case ack
        /// Try the handler again after this delay.
        case retry(after: Duration)
        /// Move the message to the dead-letter queue; `code` is the `reason` label of `events_dead_lettered_total`.
        case deadLetter(DeadLetter, code: String)
        /// Not an attempt: keep the delivery, pause the others, retry after ``probeDelay(attempt:)``.
        case hold(DependencyUnavailable)
    }

    /// Attempts before a message that keeps failing is dead-lettered.
    let maxAttempts: Int
    /// The wait before each retry, of the handler and of a move.
    let backoff: Backoff
    /// Whether the broker counts deliveries in `x-delivery-count` (a quorum queue). On a classic queue the header is
    /// whatever the publisher put there, and is ignored.
    let brokerCountsDeliveries: Bool

    init(maxAttempts: Int, backoff: Backoff = .retry, brokerCountsDeliveries: Bool = false) {
        precondition(maxAttempts > 0, "maxAttempts must be at least 1")
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.brokerCountsDeliveries = brokerCountsDeliveries
    }

    /// What to do with a delivery as it arrives, before any handling.
    enum Arrival: Equatable {
        /// Handle it; `priorAttempts` attempts were made before this delivery.
        case handle(priorAttempts: Int)
        /// A classic queue redelivered it: an earlier delivery was taken and never settled (the consumer crashed or
        /// lost its connection while holding it), which counts as an attempt. Publish a copy to the same queue with
        /// `x-attempts` set to `attempts` (confirmed), then ack this delivery; the copy is handled when it arrives.
        case recount(attempts: Int)
        /// It was taken `maxAttempts` times without being settled: move it to the dead-letter queue.
        case deadLetter(DeadLetter, code: String)
    }

    /// Where a delivery's attempt count comes from, so that it survives restarts and holds across instances:
    ///
    /// - On a quorum queue the broker counts returns in `x-delivery-count` of a redelivery: that is the prior attempts.
    ///   A first delivery has none, whatever such a header the publisher sent.
    /// - On a classic queue (the default) the broker only says `redelivered`, and `x-delivery-count` is the publisher's
    ///   (it could switch the count off by sending 0): it is not read. A redelivery counts one attempt more than
    ///   the `x-attempts` it carries, and is republished with that count (``Arrival/recount(attempts:)``), so the
    ///   count is in the message wherever and whenever it is delivered next. A first delivery carries its count as
    ///   it is (none: 0).
    ///
    /// Chosen over a count kept in a database: the router has no database, and a count in the message needs no write
    /// per delivery and no coordination between instances. The cost: a redelivery after a lost connection or a
    /// shutdown (not a crash) counts too, and the republished copy goes to the back of the queue. A message has to be
    /// caught unsettled `maxAttempts` times before it is set aside.
    func arrival(redelivered: Bool, headers: [String: String]) -> Arrival {
        if brokerCountsDeliveries, redelivered, let returns = headers[HeaderName.deliveryCount].flatMap(Self.count) {
            guard returns < maxAttempts else { return .deadLetter(Self.unsettled(returns), code: "max_attempts") }
            return .handle(priorAttempts: returns)
        }
        let carried = headers[HeaderName.attempts].flatMap(Self.count) ?? 0
        guard redelivered else { return .handle(priorAttempts: carried) }
        let attempts = carried + 1
        guard attempts < maxAttempts else { return .deadLetter(Self.unsettled(attempts), code: "max_attempts") }
        return .recount(attempts: attempts)
    }

    /// The decision after attempt number `attempt` (1-based, counting earlier deliveries' attempts) ended with
    /// `outcome`.
    func decide(after outcome: Result<Void, any Error>, attempt: Int) -> Decision {
        switch outcome {
        case .success:
            return .ack
        case .failure(let fault as DependencyUnavailable):
            return .hold(fault)
        case .failure(let error as MessagingError) where Self.brokerFaults.contains(error.code):
            // The handler's publish was not confirmed because of the broker's state (a node lost, a queue's leader
            // moving, a connection given up), not this message: counting it would dead-letter a batch of good
            // messages within a second of a node loss.
            return .hold(DependencyUnavailable("broker", reason: "\(error)"))
        case .failure(let error as InvalidMessage):
            return .deadLetter(DeadLetter(reason: error.reason, attempts: attempt), code: error.code)
        case .failure(let error as MessagingError) where error.code == .unencodable:
            // What this message would be published as cannot be carried by AMQP: retrying cannot help.
            return .deadLetter(DeadLetter(reason: "\(error)", attempts: attempt), code: "unencodable")
        case .failure(let error) where attempt >= maxAttempts:
            return .deadLetter(DeadLetter(reason: "\(error)", attempts: attempt), code: "max_attempts")
        case .failure:
            return .retry(after: backoff.delay(attempt: attempt))
        }
    }

    /// Publish failures that say the broker cannot take messages right now, whatever the message. A connection the
    /// broker closes on purpose (`.brokerClosed`, e.g. a frame it refuses) still counts: it may be the message's.
    static let brokerFaults: [MessagingError.Code] = [
        .connectionLost, .nacked, .notConnected, .closed, .heartbeatTimeout, .timeout,
    ]

    /// The wait before retry number `attempt` of a move that was not confirmed.
    func moveRetryDelay(attempt: Int) -> Duration {
        backoff.delay(attempt: attempt)
    }

    /// The wait before retry number `attempt` of a delivery held while its dependency is unavailable.
    func probeDelay(attempt: Int) -> Duration {
        backoff.delay(attempt: attempt)
    }

    /// A count from a header: a non-negative integer (one too large for `Int` counts as the largest), else nil (a
    /// header someone else set is not trusted further).
    static func count(_ text: String) -> Int? {
        let digits = text.trimmingCharacters(in: .whitespaces)
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return min(Int(digits) ?? Int.max, 1_000_000)
    }

    private static func unsettled(_ attempts: Int) -> DeadLetter {
        DeadLetter(
            reason: "taken \(attempts) times without being settled (the consumer crashed or lost its connection "
                + "while handling it)",
            attempts: attempts)
    }
}
