import EventCodec
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

    // MARK: Counting across deliveries (restarts, crashes, other instances)

    @Test func aFirstDeliveryStartsFromTheCountItCarries() {
        #expect(policy.arrival(redelivered: false, headers: [:]) == .handle(priorAttempts: 0))
        #expect(policy.arrival(redelivered: false, headers: ["x-attempts": "2"]) == .handle(priorAttempts: 2))
        for garbage in ["", "-1", "two", "1.5"] {
            #expect(policy.arrival(redelivered: false, headers: ["x-attempts": garbage]) == .handle(priorAttempts: 0))
        }
    }

    @Test func aRedeliveryOnAClassicQueueCountsOneAttemptAndTravelsWithTheMessage() {
        #expect(policy.arrival(redelivered: true, headers: [:]) == .recount(attempts: 1))
        #expect(policy.arrival(redelivered: true, headers: ["x-attempts": "1"]) == .recount(attempts: 2))
    }

    @Test func aMessageTakenMaxAttemptsTimesUnsettledIsDeadLetteredOnArrival() throws {
        guard case .deadLetter(let letter, let code) = policy.arrival(redelivered: true, headers: ["x-attempts": "2"])
        else {
            Issue.record("the third unsettled delivery of a message with a bound of 3 was not dead-lettered")
            return
        }
        #expect(code == "max_attempts")
        #expect(letter.attempts == 3)
        #expect(letter.reason.contains("without being settled"))
        if case .deadLetter = policy.arrival(redelivered: true, headers: ["x-attempts": "99"]) {} else {
            Issue.record("a count past the bound was not dead-lettered")
        }
    }

    @Test func onAQuorumQueueTheBrokersDeliveryCountIsTheCount() {
        let policy = DeliveryPolicy(maxAttempts: 3, brokerCountsDeliveries: true)
        #expect(policy.arrival(redelivered: true, headers: ["x-delivery-count": "1"]) == .handle(priorAttempts: 1))
        #expect(policy.arrival(redelivered: false, headers: ["x-delivery-count": "0"]) == .handle(priorAttempts: 0))
        // The broker's count wins over a carried one: nothing is republished on a quorum queue.
        #expect(
            policy.arrival(redelivered: true, headers: ["x-delivery-count": "2", "x-attempts": "0"])
                == .handle(priorAttempts: 2))
        if case .deadLetter(let letter, _) = policy.arrival(redelivered: true, headers: ["x-delivery-count": "3"]) {
            #expect(letter.attempts == 3)
        } else {
            Issue.record("x-delivery-count at the bound was not dead-lettered")
        }
    }

    @Test func onAQuorumQueueAFirstDeliveryHasNoPriorAttemptsWhateverItsPublisherSays() {
        let policy = DeliveryPolicy(maxAttempts: 3, brokerCountsDeliveries: true)
        #expect(policy.arrival(redelivered: false, headers: ["x-delivery-count": "7"]) == .handle(priorAttempts: 0))
    }

    @Test func onAClassicQueueAPublishersDeliveryCountDecidesNothing() {
        // A publisher's `x-delivery-count: 0` must not switch the crash-proof count off: the redelivery still counts.
        #expect(policy.arrival(redelivered: true, headers: ["x-delivery-count": "0"]) == .recount(attempts: 1))
        #expect(
            policy.arrival(redelivered: true, headers: ["x-delivery-count": "0", "x-attempts": "1"])
                == .recount(attempts: 2))
        // Nor can it make a first delivery look spent.
        #expect(policy.arrival(redelivered: false, headers: ["x-delivery-count": "99"]) == .handle(priorAttempts: 0))
    }

    @Test func aCountTooLargeForAnIntegerIsTheLargestNotNone() {
        // Read as "no count", a huge x-attempts would reset the bound.
        let huge = "99999999999999999999999"
        if case .deadLetter = policy.arrival(redelivered: true, headers: ["x-attempts": huge]) {} else {
            Issue.record("a count beyond Int was read as no count")
        }
        #expect(DeliveryPolicy.count(" 3 ") == 3)
        for garbage in ["", "-1", "+1", "1e3", "0x10", "٣"] { #expect(DeliveryPolicy.count(garbage) == nil, "\(garbage)") }
    }

    @Test func aFaultOfADependencyIsHeldNotCounted() {
        let fault = DependencyUnavailable("database", reason: "disk full")
        for attempt in [1, 3, 100] {
            #expect(policy.decide(after: .failure(fault), attempt: attempt) == .hold(fault))
        }
    }

    @Test func aPublishTheBrokerCouldNotConfirmIsHeldNotCounted() {
        for code in DeliveryPolicy.brokerFaults {
            let error = MessagingError(code, "the broker nacked the message")
            for attempt in [1, 3, 100] {
                guard case .hold(let fault) = policy.decide(after: .failure(error), attempt: attempt) else {
                    Issue.record("\(code) on attempt \(attempt) was counted against the message")
                    continue
                }
                #expect(fault.dependency == "broker")
            }
        }
        #expect(DeliveryPolicy.brokerFaults.contains(.nacked) && DeliveryPolicy.brokerFaults.contains(.connectionLost))
    }

    @Test func aConnectionTheBrokerClosedStillCountsAsAnAttempt() {
        let error = MessagingError(.brokerClosed, "FRAME_ERROR")
        #expect(policy.decide(after: .failure(error), attempt: 1) == .retry(after: policy.backoff.delay(attempt: 1)))
    }
}
