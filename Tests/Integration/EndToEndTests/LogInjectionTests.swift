import BrokerTestSupport
import Common
import Foundation
import Messaging
import Testing
import TestSupport

/// A publisher cannot write lines into the services' logs: untrusted values are escaped and bounded.
@Suite(.serialized)
struct LogInjectionTests {
    @Test func newlinesInMessageFieldsDoNotForgeLogLines() async throws {
        let system = try await RunningSystem.start("log-injection", logLevel: "debug")
        try await withCleanup({ await system.stopAll() }) {
            let forged = "2099-01-01T00:00:00+0000 critical order-service : FORGED"
            let userID = UUID().uuidString.lowercased()
            let eventID = "e-\(UUID().uuidString)\n\(forged) event_id\r\n\(forged) cr"
            let event: [String: Any] = [
                "event": "user_created", "user_id": userID, "name": "Mallory", "email": "mallory@example.com",
                "event_id": eventID, "version": 1,
            ]
            var properties = MessageProperties(messageID: eventID, type: "user_created")
            properties.headers[HeaderName.traceparent] = "00-x\n\(forged) traceparent"
            // An event type with no route, logged by the router as it moves the message to queue_unrouted (short enough
            // for an event type: at most 64 bytes).
            let unrouted: [String: Any] = ["event": "x\n2099-01-01 critical : FORGED unrouted", "user_id": userID]
            try await system.publish([
                OutboundMessage(
                    queue: QueueName.dispatch, body: Array(try JSONSerialization.data(withJSONObject: event)),
                    properties: properties),
                OutboundMessage(
                    queue: QueueName.dispatch, body: Array(try JSONSerialization.data(withJSONObject: unrouted))),
            ])

            // The values were logged (escaped), so the check below is not vacuous.
            try await eventually(timeout: .seconds(20), "the forged values in the logs\n\(system.logs())") {
                let logs = [system.notification, system.order].map { $0.log() }.joined()
                return logs.contains("FORGED event_id") && logs.contains("FORGED unrouted")
            }
            for process in [system.user, system.notification, system.order] {
                let lines = process.log().split(separator: "\n")
                let forgedLines = lines.filter { $0.hasPrefix("2099-01-01") || $0.hasPrefix("\r2099") }
                #expect(forgedLines.isEmpty, "\(process.name) has forged lines: \(forgedLines)")
                #expect(!process.log().contains("\r"), "\(process.name) logged a carriage return")
            }
        }
    }
}
