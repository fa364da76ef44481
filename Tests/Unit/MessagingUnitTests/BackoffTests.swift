import Testing

@testable import Messaging

struct BackoffTests {
    let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1))

    @Test func doublesPerAttemptUpToTheMaximum() {
        let delays = (1...6).map { backoff.delay(attempt: $0, jitter: 1) }
        #expect(
            delays == [
                .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1),
                .seconds(1),
            ])
    }

    @Test func attemptZeroWaitsLikeTheFirst() {
        // A lost connection backs off with attempt 0 before its first reconnect attempt.
        #expect(backoff.delay(attempt: 0, jitter: 1) == .milliseconds(100))
    }

    @Test func jitterScalesDownButNeverBelowTheInitialDelay() {
        #expect(backoff.delay(attempt: 4, jitter: 0.5) == .milliseconds(400))
        #expect(backoff.delay(attempt: 1, jitter: 0.5) == .milliseconds(100))
        #expect(backoff.delay(attempt: 10, jitter: 0.75) == .milliseconds(750))
    }

    @Test func hugeAttemptNumbersDoNotOverflow() {
        #expect(backoff.delay(attempt: Int.max, jitter: 1) == .seconds(1))
    }

    @Test func randomDelaysStayWithinTheirBounds() {
        for attempt in 1...8 {
            let ceiling = min(Duration.seconds(1), .milliseconds(100) * (1 << (attempt - 1)))
            for _ in 0..<50 {
                let delay = backoff.delay(attempt: attempt)
                #expect(delay >= .milliseconds(100) && delay >= ceiling / 2 && delay <= ceiling)
            }
        }
    }

    @Test func retryIsFiftyMillisecondsDoublingToFiveSeconds() {
        #expect(Backoff.retry == Backoff(initial: .milliseconds(50), maximum: .seconds(5)))
    }
}
