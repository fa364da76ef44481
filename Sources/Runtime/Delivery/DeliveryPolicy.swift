public import Common
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
    }

    /// Attempts before a message that keeps failing is dead-lettered.
    let maxAttempts: Int
    /// The wait before each retry, of the handler and of a move.
    let backoff: Backoff

    init(maxAttempts: Int, backoff: Backoff = .retry) {
        precondition(maxAttempts > 0, "maxAttempts must be at least 1")
        self.maxAttempts = maxAttempts
        self.backoff = backoff
    }

    /// The decision after attempt number `attempt` (1-based) ended with `outcome`.
    func decide(after outcome: Result<Void, any Error>, attempt: Int) -> Decision {
        switch outcome {
        case .success:
            return .ack
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

    /// The wait before retry number `attempt` of a move that was not confirmed.
    func moveRetryDelay(attempt: Int) -> Duration {
        backoff.delay(attempt: attempt)
    }
}
