import Common
import EventCodec
import Foundation
import Testing

struct UserEventTests {
    private func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test func createdEventRoundTripsWithTheWireFields() throws {
        let when = try #require(Timestamp.parse("2026-11-24T10:00:00.123Z"))
        let event = UserEvent(
            kind: .created, userID: "u1", name: "Alice", email: "alice@example.com",
            eventID: "e1", version: 1, occurredAt: when)
        let body = event.encodedBody()
        let fields = try json(body)
        #expect(Set(fields.keys) == ["event", "user_id", "name", "email", "event_id", "version", "occurred_at"])
        #expect(fields["event"] as? String == "user_created")
        #expect(fields["occurred_at"] as? String == "2026-11-24T10:00:00.123Z")
        #expect(try UserEvent.decode(body: body) == event)
    }

    @Test func deletedEventCarriesNoNameOrEmail() throws {
        let event = UserEvent(kind: .deleted, userID: "u1", eventID: "e9", version: 3, occurredAt: Date())
        let fields = try json(event.encodedBody())
        #expect(fields["name"] == nil && fields["email"] == nil)
        #expect(fields["version"] as? Int == 3)
        let decoded = try UserEvent.decode(body: event.encodedBody())
        #expect(decoded.kind == .deleted && decoded.version == 3 && decoded.name == nil)
    }

    @Test func originalSystemShapeIsAccepted() throws {
        let body = Array(#"{"event":"user_created","user_id":"42","name":"Alice","email":"alice@example.com"}"#.utf8)
        let fromMessageID = try UserEvent.decode(body: body, messageID: "m-1")
        #expect(fromMessageID.version == 1)
        #expect(!fromMessageID.isVersioned, "a missing version is no version, not version 1")
        #expect(fromMessageID.eventID == "m-1")
        #expect(fromMessageID.name == "Alice" && fromMessageID.email == "alice@example.com")
        #expect(fromMessageID.occurredAt == nil)

        let hashed = try UserEvent.decode(body: body)
        #expect(hashed.eventID.hasPrefix("body-") && hashed.eventID.count == 37)
        #expect(try UserEvent.decode(body: body).eventID == hashed.eventID, "same body, same id")
        let other = Array(#"{"event":"user_created","user_id":"43","name":"Bob","email":"b@example.com"}"#.utf8)
        #expect(try UserEvent.decode(body: other).eventID != hashed.eventID)
    }

    @Test func unknownExtraFieldsAreIgnored() throws {
        let body = Array(
            #"{"event":"user_updated","user_id":"7","name":"A","email":"a@b.co","version":4,"color":"red","n":{"x":[1]}}"#
                .utf8)
        let event = try UserEvent.decode(body: body)
        #expect(event.kind == .updated && event.version == 4)
    }

    @Test(arguments: [
        (#"not json"#, nil as String?),
        (#"[1,2]"#, nil),
        (#"{"user_id":"1","name":"a","email":"a@b.c"}"#, "event"),
        (#"{"event":"user_exploded","user_id":"1"}"#, "event"),
        (#"{"event":"user_created","name":"a","email":"a@b.c"}"#, "user_id"),
        (#"{"event":"user_created","user_id":"1","email":"a@b.c"}"#, "name"),
        (#"{"event":"user_created","user_id":"1","name":"a"}"#, "email"),
        (#"{"event":"user_created","user_id":1,"name":"a","email":"a@b.c"}"#, "user_id"),
        (#"{"event":"user_created","user_id":"1","name":"a","email":"a@b.c","version":"2"}"#, "version"),
        (#"{"event":"user_created","user_id":"1","name":"a","email":"a@b.c","version":1.5}"#, "version"),
        (#"{"event":"user_created","user_id":"1","name":"a","email":"a@b.c","version":0}"#, "version"),
        (#"{"event":"user_deleted","user_id":"1","occurred_at":"yesterday"}"#, "occurred_at"),
    ])
    func invalidBodiesAreRejectedNamingTheField(body: String, field: String?) throws {
        #expect(throws: EventDecodingError.self) { try UserEvent.decode(body: Array(body.utf8)) }
        do {
            _ = try UserEvent.decode(body: Array(body.utf8))
        } catch {
            #expect(error.field == field)
        }
    }

    @Test func eventTypeIsReadWithoutFullValidation() throws {
        #expect(try UserEvent.eventType(of: Array(#"{"event":"order_placed","id":1}"#.utf8)) == "order_placed")
        #expect(throws: EventDecodingError.self) { try UserEvent.eventType(of: Array("{}".utf8)) }
    }

    @Test func timestampsParseWithAndWithoutFraction() throws {
        let a = try #require(Timestamp.parse("2026-11-24T10:00:00Z"))
        let b = try #require(Timestamp.parse("2026-11-24T10:00:00.500Z"))
        #expect(b.timeIntervalSince(a) == 0.5)
        #expect(Timestamp.parse("2026-13-01") == nil)
    }
}

struct TraceContextTests {
    @Test func newTraceparentsAreValidAndDistinct() {
        let first = TraceContext.continuing(nil)
        let second = TraceContext.continuing("garbage")
        #expect(TraceContext.isValid(first) && TraceContext.isValid(second))
        #expect(first != second)
        #expect(first.count == 55)
    }

    @Test func aValidIncomingTraceparentIsKept() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        #expect(TraceContext.continuing(incoming) == incoming)
        #expect(!TraceContext.isValid("00-00000000000000000000000000000000-00f067aa0ba902b7-01"))
        #expect(!TraceContext.isValid("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
    }

    @Test func aGivenVersionMarksTheEventVersionedAndAnUnversionedOneStaysSoWhenEncoded() throws {
        let versioned = try UserEvent.decode(
            body: Array(#"{"event":"user_deleted","user_id":"1","version":1}"#.utf8))
        #expect(versioned.isVersioned && versioned.version == 1)
        let unversioned = try UserEvent.decode(body: Array(#"{"event":"user_deleted","user_id":"1"}"#.utf8))
        #expect(!unversioned.isVersioned)
        let fields = try #require(
            try JSONSerialization.jsonObject(with: Data(unversioned.encodedBody())) as? [String: Any])
        #expect(fields["version"] == nil)
        #expect(try !UserEvent.decode(body: unversioned.encodedBody()).isVersioned)
    }
}
