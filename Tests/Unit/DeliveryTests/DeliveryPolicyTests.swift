import Common
import Messaging
import Testing

@testable import Delivery

/// The pure decisions: ack, retry after a backoff, or dead-letter with a reason and a code.
struct DeliveryPolicyTests {
    private struct Failure: Error, CustomStringConvertible {
        var description: String { "database is locked" }
    }

    private let policy = DeliveryPolicy(maxAttempts: 3)

    @Test func successIsAckedOnAnyAttempt() {
        for attempt in 1...3 {
            #expect(policy.decide(after: .success(()), attempt: attempt) == .ack)
        }
    }

    @Test func anInvalidMessageIsDeadLetteredOnTheFirstAttemptWithItsCode() {
        let decision = policy.decide(after: .failure(InvalidMessage("bad body", code: "invalid_json")), attempt: 1)
        #expect(decision == .deadLetter(DeadLetter(reason: "bad body", attempts: 1), code: "invalid_json"))
    }

    @Test func anEventThatDoesNotDecodeHasTheCodeOfItsFault() throws {
        let notJSON = InvalidMessage(try #require(decodingError("not json")))
        #expect(notJSON.code == "invalid_json")
        let missingField = InvalidMessage(try #require(decodingError(#"{"event":"user_created"}"#)))
        #expect(missingField.code == "invalid_event")
        #expect(!missingField.reason.isEmpty)
    }

    @Test func otherErrorsAreRetriedWithGrowingBackoffUntilTheLastAttempt() throws {
        var ceilings: [Duration] = []
        for attempt in 1...2 {
            guard case .retry(let delay) = policy.decide(after: .failure(Failure()), attempt: attempt) else {
                Issue.record("attempt \(attempt) was not retried")
                return
            }
            let ceiling = min(Backoff.retry.maximum, Backoff.retry.initial * (1 << (attempt - 1)))
            #expect(delay >= Backoff.retry.initial && delay <= ceiling, "attempt \(attempt): \(delay)")
            ceilings.append(ceiling)
        }
        #expect(ceilings[1] > ceilings[0])
        let last = policy.decide(after: .failure(Failure()), attempt: 3)
        #expect(last == .deadLetter(DeadLetter(reason: "database is locked", attempts: 3), code: "max_attempts"))
    }

    @Test func oneAttemptMeansNoRetry() {
        let decision = DeliveryPolicy(maxAttempts: 1).decide(after: .failure(Failure()), attempt: 1)
        #expect(decision == .deadLetter(DeadLetter(reason: "database is locked", attempts: 1), code: "max_attempts"))
    }

    @Test func moveRetriesWaitWithinTheBackoff() {
        for attempt in 1...10 {
            let delay = policy.moveRetryDelay(attempt: attempt)
            #expect(delay >= Backoff.retry.initial && delay <= Backoff.retry.maximum)
        }
    }

    private func decodingError(_ body: String) -> EventDecodingError? {
        do {
            _ = try UserEvent.decode(body: Array(body.utf8))
            return nil
        } catch {
            return error
        }
    }
}
