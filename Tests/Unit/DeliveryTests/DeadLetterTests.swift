import EventCodec
import Foundation
import Messaging
import Testing

@testable import Delivery

/// The header contract of a move, and its undoing by the requeue tool.
struct DeadLetterTests {
    private let original = MessageProperties(
        messageID: "ev-1", type: "user_created", appID: "user-service", headers: ["traceparent": "00-aa-bb-01"])

    @Test func markingAddsTheFourHeadersAndKeepsEverythingElse() throws {
        let date = Date(timeIntervalSince1970: 1_800_000_000.123)
        let marked = DeadLetter(reason: "poisoned row", attempts: 5).marking(original, movedFrom: "queue_order", at: date)
        #expect(marked.headers["x-error"] == "poisoned row")
        #expect(marked.headers["x-original-queue"] == "queue_order")
        #expect(marked.headers["x-attempts"] == "5")
        #expect(marked.headers["x-failed-at"] == Timestamp.format(date))
        #expect(marked.headers["traceparent"] == "00-aa-bb-01")
        #expect(marked.headers.count == 5)
        var rest = marked
        rest.headers = original.headers
        #expect(rest == original, "only headers are added")
    }

    @Test func anUnroutedMoveCarriesNoAttemptCount() {
        let marked = DeadLetter(reason: "no route").marking(original, movedFrom: "queue_dispatch")
        #expect(marked.headers["x-attempts"] == nil)
        #expect(marked.headers["x-original-queue"] == "queue_dispatch")
    }

    @Test func unmarkingRestoresTheOriginalAndNamesItsQueue() {
        let marked = DeadLetter(reason: "x", attempts: 2).marking(original, movedFrom: "queue_order")
        let (restored, queue) = DeadLetter.unmarking(marked)
        #expect(restored == original)
        #expect(queue == "queue_order")
        #expect(DeadLetter.unmarking(original).originalQueue == nil)
    }

    @Test func theHeaderNamesAreTheWireContract() {
        #expect(DeadLetter.headerNames == ["x-error", "x-failed-at", "x-original-queue", "x-attempts"])
    }
}
