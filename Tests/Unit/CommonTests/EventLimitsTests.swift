@testable import EventCodec
import Testing

/// Consumers take no event the user API would refuse for its size: each field at its limit passes, one byte more is
/// an error naming the field.
struct EventLimitsTests {
    private static func body(
        event: String = "user_created", userID: String = "u-1", name: String = "Alice", email: String = "a@example.com",
        eventID: String = "e-1"
    ) -> [UInt8] {
        var writer = EventWriter()
        writer.member("event", string: event)
        writer.member("user_id", string: userID)
        writer.member("name", string: name)
        writer.member("email", string: email)
        writer.member("event_id", string: eventID)
        writer.member("version", integer: 1)
        return writer.finish()
    }

    private static func email(bytes: Int) -> String {
        String(repeating: "a", count: 64) + "@" + String(repeating: "b", count: bytes - 64 - 1 - 4) + ".com"
    }

    static let cases: [(field: String, atLimit: [UInt8], overLimit: [UInt8])] = [
        (
            "name", body(name: String(repeating: "é", count: EventLimits.nameBytes / 2)),
            body(name: String(repeating: "é", count: EventLimits.nameBytes / 2) + "x")
        ),
        ("email", body(email: email(bytes: EventLimits.emailBytes)), body(email: email(bytes: EventLimits.emailBytes + 1))),
        (
            "user_id", body(userID: String(repeating: "u", count: EventLimits.userIDBytes)),
            body(userID: String(repeating: "u", count: EventLimits.userIDBytes + 1))
        ),
        (
            "event_id", body(eventID: String(repeating: "e", count: EventLimits.eventIDBytes)),
            body(eventID: String(repeating: "e", count: EventLimits.eventIDBytes + 1))
        ),
    ]

    @Test(arguments: 0..<4)
    func aFieldOverItsLimitIsRefusedNamingTheField(index: Int) throws {
        let (field, atLimit, overLimit) = Self.cases[index]
        _ = try UserEvent.decode(body: atLimit)
        #expect(throws: EventDecodingError.self) { try UserEvent.decode(body: overLimit) }
        do {
            _ = try UserEvent.decode(body: overLimit)
        } catch {
            #expect(error.field == field)
            #expect(error.reason.contains("bytes"), "\(error)")
        }
    }

    @Test func aLongEventTypeIsRefusedEvenWhenTheRouterOnlyReadsTheType() {
        let type = String(repeating: "t", count: EventLimits.eventTypeBytes + 1)
        for read in [{ try UserEvent.eventType(of: Self.body(event: type)) }, { try UserEvent.envelope(of: Self.body(event: type)).type }] {
            #expect(throws: EventDecodingError(field: "event", reason: "must be at most \(EventLimits.eventTypeBytes) bytes (UTF-8)")) {
                _ = try read()
            }
        }
        #expect((try? UserEvent.eventType(of: Self.body(event: String(repeating: "t", count: EventLimits.eventTypeBytes)))) != nil)
    }

    @Test func aMessageIDTooLongForAnEventIDIsNotTakenAsOne() throws {
        let body = Array(#"{"event":"user_created","user_id":"u","name":"A","email":"a@example.com"}"#.utf8)
        let long = String(repeating: "m", count: EventLimits.eventIDBytes + 1)
        #expect(try UserEvent.decode(body: body, messageID: long).eventID.hasPrefix("body-"))
        let fits = String(repeating: "m", count: EventLimits.eventIDBytes)
        #expect(try UserEvent.decode(body: body, messageID: fits).eventID == fits)
    }
}
