import Common
import Foundation
import Messaging
import Testing

@testable import Delivery

/// A move to `<queue>.dead` must itself always be publishable, whatever the message and its reason held.
struct UnencodableDeadLetterTests {
    @Test func aHugeReasonIsCutSoTheMoveFits() {
        let reason = "unknown event type '" + String(repeating: "e", count: 140_000) + "'"
        let marked = DeadLetter(reason: reason, attempts: 1).marking(MessageProperties(), movedFrom: "queue_order")
        let error = marked.headers[HeaderName.error] ?? ""
        #expect(error.utf8.count <= DeadLetter.maxReasonBytes)
        #expect(error.hasPrefix("unknown event type 'eee"))
        #expect(marked.fittedToAMQP().dropped.isEmpty, "fits a frame as it is")
    }

    @Test(arguments: [
        MessageProperties(messageID: String(repeating: "i", count: 300)),
        MessageProperties(type: String(repeating: "t", count: 300)),
        MessageProperties(appID: String(repeating: "a", count: 300)),
        MessageProperties(contentType: String(repeating: "c", count: 300)),
        MessageProperties(headers: [String(repeating: "k", count: 300): "v"]),
        MessageProperties(headers: ["x-huge": String(repeating: "h", count: 200_000)]),
        MessageProperties(headers: Dictionary(uniqueKeysWithValues: (0..<20_000).map { ("h\($0)", "v") })),
    ])
    func whatCannotBeCarriedIsDroppedAndNamedInTheReason(original: MessageProperties) {
        let marked = DeadLetter(reason: "poison", attempts: 5).marking(original, movedFrom: "queue_dispatch")
        #expect(marked.fittedToAMQP().dropped.isEmpty, "the move is publishable")
        let error = marked.headers[HeaderName.error] ?? ""
        #expect(error.hasPrefix("poison; dropped what AMQP cannot carry: "), "\(error)")
        #expect(error.utf8.count <= DeadLetter.maxReasonBytes)
        #expect(marked.headers[HeaderName.originalQueue] == "queue_dispatch")
        #expect(marked.headers[HeaderName.attempts] == "5")
    }

    @Test func anUnencodableForwardIsDeadLetteredAtOnce() {
        let error = MessagingError(.unencodable, "cannot publish to 'queue_order': property message_id is 300 bytes")
        let decision = DeliveryPolicy(maxAttempts: 5).decide(after: .failure(error), attempt: 1)
        #expect(decision == .deadLetter(DeadLetter(reason: "\(error)", attempts: 1), code: "unencodable"))
    }
}
