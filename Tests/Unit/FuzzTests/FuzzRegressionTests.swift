import EventCodec
import HTTPServer
import NotificationService
import Foundation
import Testing

/// What the fuzz tests found, pinned down with the inputs that showed it.
struct FuzzRegressionTests {
    /// event-decoder fuzzing: a timestamp lost a millisecond on every decode and re-encode (the order service
    /// stored `…00.001Z` for an event that said `…00.002Z`).
    @Test func timestampsSurviveParseAndFormat() throws {
        for second in ["2026-06-15T10:00:00", "1969-12-31T23:59:59", "2889-11-18T02:09:48", "0001-01-01T00:00:00"] {
            for millisecond in 0..<1000 {
                let text = second + "." + String(1000 + millisecond).dropFirst() + "Z"
                let date = try #require(Timestamp.parse(text))
                let formatted = Timestamp.format(date)
                #expect(formatted == text)
                if formatted != text { return }  // one is enough to see it
            }
        }
        let body = Array(
            #"{"event":"user_deleted","user_id":"u","event_id":"e","version":2,"occurred_at":"2889-11-18T02:09:48.231Z"}"#
                .utf8)
        let event = try UserEvent.decode(body: body)
        let hopped = try UserEvent.decode(body: UserEvent.decode(body: event.encodedBody()).encodedBody())
        #expect(hopped == event)
    }

    /// event-decoder fuzzing: nested values in an unknown field took time cubic in their depth to decode (a 5 kB
    /// body nested 400 deep cost 8 s of CPU in a release build; 40 kB, two minutes), in the order service and in
    /// the router, which reads the event type the same way.
    @Test func deeplyNestedUnknownFieldsDecodeQuickly() throws {
        let leaves = Array(repeating: #""a""#, count: 1_000).joined(separator: ",")
        let body = Array(
            (#"{"event":"user_deleted","user_id":"u","x":"# + String(repeating: "[", count: 400) + leaves
                + String(repeating: "]", count: 400) + #","y":"# + String(repeating: #"{"a":"#, count: 500) + "1"
                + String(repeating: "}", count: 500) + "}").utf8)
        let start = ContinuousClock.now
        let event = try UserEvent.decode(body: body)
        #expect(try UserEvent.eventType(of: body) == "user_deleted")
        let elapsed = start.duration(to: .now)
        #expect(event.userID == "u")
        #expect(elapsed < .seconds(1), "took \(elapsed)")
    }

    /// routing-table fuzzing: a mapping key that is a list or a mapping made Yams trap, so a one-character typo in
    /// the table file (`,` for `:` in JSON) crashed the notification service, at start or on reload.
    @Test(arguments: [
        #"{"routes":{"user_updated",["queue_audit"]}}"#,
        "routes:\n  [user_created]: [queue_order]",
        "routes:\n  ? {a: b}\n  : [queue_order]",
        "default: [queue_order]\nroutes: {user_created: {[x]: y}}",
        "!!set {[a]: b}",
    ])
    func nonScalarMappingKeysAreRefused(text: String) {
        #expect(throws: RoutingTableError.self) { try RoutingTable.parse(text) }
    }

    /// HTTP fuzzing: the answer to a CONNECT request went out without body or length on a connection kept open,
    /// so the client could not tell where it ended and waited for the idle timeout.
    @Test(.timeLimit(.minutes(1))) func answersToConnectCloseTheConnection() async throws {
        let server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, idleTimeout: .seconds(120)),
            router: HTTPFuzzTests.router(), logger: HTTPFuzzTests.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try await server.listeningPort()
            for request in ["CONNECT /users/1 HTTP/1.1\r\nHost: t\r\n\r\n", "CONNECT example.com:443 HTTP/1.1\r\nHost: t\r\n\r\n"] {
                let received = try await LoopbackClient.exchange(Array(request.utf8), port: port, deadline: .seconds(20))
                let stream = ResponseStream(received ?? [])
                #expect(received != nil, "the connection was kept open")
                #expect(stream.problem == nil)
                #expect(stream.responses.first.map { $0.status >= 400 } == true)
            }
            group.cancelAll()
        }
    }
}
