/// Exponential backoff with jitter, the one retry rhythm of the project: reconnecting to the broker and retrying a
/// delivery both wait ``delay(attempt:)``.
public struct Backoff: Sendable, Equatable {
    /// The delay before the first retry, and the least any retry waits.
    public var initial: Duration
    /// No retry waits longer than this.
    public var maximum: Duration

    /// Retrying work that failed (a delivery, an outbox batch): 50 ms doubling per attempt, capped at 5 s.
    public static let retry = Backoff(initial: .milliseconds(50), maximum: .seconds(5))

    /// Creates a backoff; `initial` must not exceed `maximum`.
    public init(initial: Duration, maximum: Duration) {
        precondition(initial > .zero && initial <= maximum, "backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before retry number `attempt` (1-based): `initial` doubled per attempt up to `maximum`, scaled by a
    /// random factor in 0.5...1 so that clients retrying together spread out, and never below `initial`.
    public func delay(attempt: Int) -> Duration {
        delay(attempt: attempt, jitter: Self.randomJitter())
    }

    /// A random factor for ``delay(attempt:jitter:)``, in 0.5...1.
    static func randomJitter() -> Double { Double.random(in: 0.5...1.0) }

    /// ``delay(attempt:)`` with the random factor given (`jitter` in 0.5...1).
    func delay(attempt: Int, jitter: Double) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let ceiling = min(maximum, initial * (1 << exponent))
        return max(initial, ceiling * jitter)
    }
}
