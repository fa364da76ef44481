import EventCodec
import Foundation
import Testing

/// The event body's own writer and scanner: the bytes written, and what the strict reading accepts and refuses.
struct EventCodecTests {
    private static let when = Timestamp.parse("2026-11-24T10:00:00.123Z")!

    private func decode(_ body: String) -> Result<UserEvent, EventDecodingError> {
        Result { () throws(EventDecodingError) in try UserEvent.decode(body: Array(body.utf8)) }
    }

    private func error(_ body: String) -> EventDecodingError? {
        if case .failure(let error) = decode(body) { return error }
        return nil
    }

    // MARK: Writing

    @Test func bodiesAreWrittenInTheWireOrderEscapingOnlyWhatJSONRequires() {
        let created = UserEvent(
            kind: .created, userID: "u/1", name: "A\"b\\c\n\t\u{1}\u{1F}\u{7F}é\u{2028}💥", email: "a@b.co",
            eventID: "e1", version: 3, occurredAt: Self.when)
        #expect(
            String(decoding: created.encodedBody(), as: UTF8.self)
                == #"{"event":"user_created","user_id":"u/1","name":"A\"b\\c\n\t\u0001\u001f"# + "\u{7F}é\u{2028}💥"
                + #"","email":"a@b.co","event_id":"e1","version":3,"occurred_at":"2026-11-24T10:00:00.123Z"}"#)
        let deleted = UserEvent(
            kind: .deleted, userID: "u", eventID: "e2", version: Int64.max, occurredAt: nil)
        #expect(
            String(decoding: deleted.encodedBody(), as: UTF8.self)
                == #"{"event":"user_deleted","user_id":"u","event_id":"e2","version":9223372036854775807}"#)
        let unversioned = UserEvent(
            kind: .updated, userID: "u", name: "", email: "", eventID: "e3", version: 1, occurredAt: nil,
            isVersioned: false)
        #expect(
            String(decoding: unversioned.encodedBody(), as: UTF8.self)
                == #"{"event":"user_updated","user_id":"u","name":"","email":"","event_id":"e3"}"#)
    }

    @Test func everyControlCharacterAndEveryPlaneSurvivesTheRoundTrip() throws {
        let controls = String(String.UnicodeScalarView((0..<0x20).map { Unicode.Scalar(UInt8($0)) }))
        let name = controls + "\"\\/\u{7F}\u{80}\u{FFFF}\u{10000}\u{10FFFF}"
        let event = UserEvent(
            kind: .created, userID: "u", name: name, email: "e", eventID: "e", version: 1, occurredAt: Self.when)
        let body = event.encodedBody()
        #expect(!body.contains { $0 < 0x20 }, "a raw control character in the body")
        #expect(try UserEvent.decode(body: body) == event)
        let fields = try #require(JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        #expect(fields["name"] as? String == name)
    }

    // MARK: Strict reading

    @Test(arguments: [
        #"{"event":"user_deleted","user_id":"u",}"#,
        #"{"event":"user_deleted","user_id":"u","x":[1,]}"#,
        #"{"event":"user_deleted","user_id":"u","x":{"a":1,}}"#,
        #"{"event":"user_deleted","user_id":"u","x":{},}"#,
        #"[1,]"#,
    ])
    func trailingCommasAreNotJSON(body: String) {
        #expect(error(body) == EventDecodingError(field: nil, reason: "body is not valid JSON"))
        #expect(throws: EventDecodingError.self) { try UserEvent.eventType(of: Array(body.utf8)) }
    }

    /// Values no field reads are checked all the same: a body is JSON or it is not.
    @Test(arguments: [
        #"["\q"]"#, #"["\ud800"]"#, #"["\udc00\ud800"]"#, #"["\u12"]"#, "[\"a\u{1}\"]", #"[01]"#, #"[1.]"#, #"[-]"#,
        #"[1e]"#, #"[.5]"#, #"[1e400]"#, #"{"a":-1E+999}"#, #"[tru]"#, #"{"a" 1}"#, #"{1:2}"#, #"[1 2]"#,
    ])
    func invalidNestedValuesAreNotJSON(value: String) {
        let body = #"{"event":"user_deleted","user_id":"u","x":"# + value + "}"
        #expect(error(body) == EventDecodingError(field: nil, reason: "body is not valid JSON"), "\(value)")
    }

    @Test(arguments: [
        [0xFF], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],
        [0xE2, 0x82], [0x80], [0xC3],
    ] as [[UInt8]])
    func invalidUTF8IsNotJSONInAnyString(sequence: [UInt8]) {
        for (prefix, suffix) in [
            (#"{"event":"user_deleted","user_id":""#, #""}"#),
            (#"{"event":"user_deleted","user_id":"u","x":["#, #""]}"#),
            (#"{"event":"user_deleted","user_id":"u",""#, #"":1}"#),
        ] {
            let body = Array((prefix + "a").utf8) + sequence + Array(("b" + suffix).utf8)
            let result = Result { () throws(EventDecodingError) in try UserEvent.decode(body: body) }
            #expect(throws: EventDecodingError(field: nil, reason: "body is not valid JSON")) { try result.get() }
        }
    }

    @Test func validUTF8AndEscapesDecodeToTheirCharacters() throws {
        let body = #"{"event":"user_deleted","user_id":"\u00e9\uD83D\uDCA5\u0000\/\b\f\n\r\t\"\\"# + "é💥\u{10FFFF}\"}"
        let event = try decode(body).get()
        #expect(event.userID == "é💥\u{0}/\u{8}\u{C}\n\r\t\"\\é💥\u{10FFFF}")
        let escapedKey = try decode(#"{"\u0065vent":"user_deleted","user_\u0069d":"u"}"#).get()
        #expect(escapedKey.userID == "u")
    }

    @Test func onlyUTF8BodiesAreRead() throws {
        let text = #"{"event":"user_deleted","user_id":"u"}"#
        let littleEndian = Array(text.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let bigEndian = Array(text.utf16).flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        for body in [littleEndian, [0xFF, 0xFE] + littleEndian, [0xFE, 0xFF] + bigEndian] {
            #expect(throws: EventDecodingError(field: nil, reason: "body is not valid JSON")) {
                try UserEvent.decode(body: body)
            }
        }
        // A UTF-8 byte order mark is allowed, as Python's json.loads allows it on bytes.
        #expect(try UserEvent.decode(body: [0xEF, 0xBB, 0xBF] + Array(text.utf8)).userID == "u")
    }

    @Test(arguments: EventFieldName.allCases)
    func aKnownFieldGivenTwiceIsRefused(field: EventFieldName) {
        var members = [
            ("event", #""user_created""#), ("user_id", #""u""#), ("name", #""n""#), ("email", #""e""#),
            ("event_id", #""id""#), ("version", "2"), ("occurred_at", #""2026-11-24T10:00:00.123Z""#),
        ]
        let repeated = members.first { $0.0 == field.rawValue }!
        members.append(repeated)
        let body = "{" + members.map { #""\#($0.0)":\#($0.1)"# }.joined(separator: ",") + "}"
        #expect(error(body) == EventDecodingError(field: field.rawValue, reason: "given more than once"))
    }

    @Test func unknownFieldsMayRepeat() throws {
        let event = try decode(#"{"event":"user_deleted","user_id":"u","x":1,"x":[2],"y":{"a":1,"a":2}}"#).get()
        #expect(event.userID == "u")
    }

    /// `version` keeps `JSONDecoder`'s typing: a whole number is an integer however it is written (below 2^53 when
    /// written with a fraction or exponent), anything else is not.
    @Test(arguments: [
        ("1", "ok 1"), ("1.0", "ok 1"), ("1E2", "ok 100"), ("15e-1", "must be an integer"), ("1.5", "must be an integer"),
        ("2.0000000000000001", "ok 2"), ("9223372036854775807", "ok 9223372036854775807"),
        ("9223372036854775808", "must be an integer"), ("-9223372036854775808", "must be at least 1"),
        ("-9223372036854775809", "must be an integer"), ("99999999999999999999999", "must be an integer"),
        ("1e18", "must be an integer"), ("9007199254740991.0", "ok 9007199254740991"), ("1e-400", "must be at least 1"),
        ("1e-320", "must be an integer"), ("-0", "must be at least 1"), ("0", "must be at least 1"),
        ("\"1\"", "must be an integer"), ("true", "must be an integer"), ("[1]", "must be an integer"),
        ("{}", "must be an integer"), ("null", "unversioned"), ("1e400", "not JSON"), ("01", "not JSON"),
        ("+1", "not JSON"), ("1.", "not JSON"),
    ])
    func versionIsTypedAsBefore(text: String, expected: String) {
        let outcome: String
        switch decode(#"{"event":"user_deleted","user_id":"u","version":"# + text + "}") {
        case .success(let event): outcome = event.isVersioned ? "ok \(event.version)" : "unversioned"
        case .failure(let error) where error.field == "version": outcome = error.reason
        case .failure(let error): outcome = error.reason == "body is not valid JSON" ? "not JSON" : "\(error)"
        }
        #expect(outcome == expected, "\(text)")
    }

    @Test func nestingStopsAtTheDepthLimitAndCostsLinearTime() throws {
        func nested(_ depth: Int) -> String {
            #"{"event":"user_deleted","user_id":"u","x":"# + String(repeating: "[", count: depth)
                + String(repeating: "]", count: depth) + "}"
        }
        #expect(try decode(nested(510)).get().userID == "u")
        #expect(try decode(nested(511)).get().userID == "u", "512 levels with the body's own object")
        #expect(error(nested(512)) == EventDecodingError(field: nil, reason: "body is not valid JSON"))
        #expect(error(nested(100_000)) == EventDecodingError(field: nil, reason: "body is not valid JSON"))

        // 200 kB of values nested 500 deep, over and over, read twice: linear time (nested values decoded through
        // Decodable once took minutes for 40 kB), with room for a debug build on a loaded machine.
        let deep = String(repeating: #"{"a":["#, count: 250) + "1" + String(repeating: "]}", count: 250)
        let body = #"{"event":"user_deleted","user_id":"u","x":["# + Array(repeating: deep, count: 100)
            .joined(separator: ",") + "]}"
        let start = ContinuousClock.now
        #expect(try decode(body).get().userID == "u")
        #expect(try UserEvent.eventType(of: Array(body.utf8)) == "user_deleted")
        let elapsed = start.duration(to: .now)
        #expect(elapsed < .seconds(5), "\(body.utf8.count) bytes took \(elapsed)")
    }

    // MARK: One scan for the router

    @Test func theEnvelopeGivesTheTypeAndTheEventOfAKnownType() throws {
        let body = UserEvent(kind: .updated, userID: "u", name: "n", email: "e", eventID: "e1", version: 2,
            occurredAt: Self.when).encodedBody()
        let envelope = try UserEvent.envelope(of: body, messageID: "m")
        #expect(envelope.type == "user_updated")
        #expect(envelope.event == (try UserEvent.decode(body: body, messageID: "m")))
    }

    @Test func theEnvelopeOfAnotherTypeDoesNotValidateTheRest() throws {
        let envelope = try UserEvent.envelope(of: Array(#"{"event":"order_placed","user_id":1,"version":"x"}"#.utf8))
        #expect(envelope.type == "order_placed" && envelope.event == nil)
    }

    @Test(arguments: [
        #"{"event":"user_created","user_id":"u"}"#, #"{"event":1}"#, #"{"user_id":"u"}"#, #"[]"#, #"{"event":"a",}"#,
        #"{"event":"a","event":"a"}"#,
    ])
    func theEnvelopeRefusesWhatDecodeRefuses(body: String) {
        let bytes = Array(body.utf8)
        let decodeError = error(body)
        #expect(decodeError != nil)
        #expect(throws: decodeError!) { try UserEvent.envelope(of: bytes) }
    }
}

/// The known fields, as test arguments.
enum EventFieldName: String, CaseIterable, Sendable {
    case event, userID = "user_id", name, email, eventID = "event_id", version, occurredAt = "occurred_at"
}
