import EventCodec
import Foundation
import PropertyBased
import Testing

/// The event decoder against what any publisher on the broker may send.
///
/// Properties, for every input: decoding never crashes; it returns an event or throws an ``EventDecodingError``
/// naming a known field (or none) and a reason; a decoded event is valid (id sizes, version, fields per kind);
/// re-encoding it and decoding again gives the same event (timestamps to the millisecond, the wire's precision)
/// and a third pass changes nothing; unknown fields change nothing.
struct EventDecoderFuzzTests {
    @Test func randomBytes() {
        Fuzz.run("event-decoder.random-bytes", cases: 4_000, seed: 0xE1) { fuzzCase in
            let count = fuzzCase.random.length(upTo: 4_096)
            var body = fuzzCase.random.bytes(count: count, interesting: EventBodyGenerator.interestingBytes)
            if fuzzCase.random.chance(0.5) { body = [UInt8(ascii: "{")] + body }
            fuzzCase.note(input: body)
            Self.check(body: body, messageID: Self.messageID(&fuzzCase.random), fuzzCase)
        }
    }

    @Test func generatedObjects() {
        Fuzz.run("event-decoder.objects", cases: 3_000, seed: 0xE2) { fuzzCase in
            let object = EventBodyGenerator.object(&fuzzCase.random)
            let body = object.text
            let messageID = Self.messageID(&fuzzCase.random)
            fuzzCase.note(input: body)
            let decoded = Self.check(body: body, messageID: messageID, fuzzCase)

            // Unknown fields are ignored: one more changes nothing (but a body hash used as the event id).
            var widened = object
            let unknown = EventBodyGenerator.Member(
                key: EventBodyGenerator.unknownKey(&fuzzCase.random),
                value: Array(fuzzCase.random.pick([#"null"#, #"1"#, #"[1,{"a":"b"}]"#, #""x""#, #"{"event":"no"}"#]).utf8))
            widened.members.insert(unknown, at: fuzzCase.random.int(0...widened.members.count))
            let widenedResult = Result { () throws(EventDecodingError) in
                try UserEvent.decode(body: widened.text, messageID: messageID)
            }
            switch (decoded, widenedResult) {
            case (.success(var event), .success(var widenedEvent)):
                if event.eventID.hasPrefix("body-") && widenedEvent.eventID.hasPrefix("body-") {
                    event.eventID = ""
                    widenedEvent.eventID = ""
                }
                if widenedEvent != event {
                    Issue.record("an unknown field changed the event: \(Self.difference(event, widenedEvent)); \(fuzzCase)")
                }
            case (.failure(let error), .failure(let widenedError)):
                if widenedError != error {
                    Issue.record("an unknown field changed the error: \(error) vs \(widenedError); \(fuzzCase)")
                }
            default:
                Issue.record(
                    "an unknown field changed the outcome: \(Self.summary(decoded)) vs \(Self.summary(widenedResult)); \(fuzzCase)")
            }
        }
    }

    @Test func mutatedValidBodies() {
        Fuzz.run("event-decoder.mutations", cases: 3_000, seed: 0xE3) { fuzzCase in
            let original = EventBodyGenerator.body(of: Self.validEvent(&fuzzCase.random))
            let body = Mutation.mutate(
                original, count: 4, using: &fuzzCase.random, interesting: EventBodyGenerator.interestingBytes)
            fuzzCase.note(input: body)
            Self.check(body: body, messageID: Self.messageID(&fuzzCase.random), fuzzCase)
        }
    }

    /// What the user service publishes decodes to exactly what it meant, and re-encodes to the same fields and
    /// values (the key order is `JSONEncoder`'s): no field, character or millisecond is lost on a hop.
    @Test func canonicalBodiesRoundTripExactly() async {
        let anyScalar = Gen<UInt32>.value(in: 0...0x10_FFFF).map { Character(Unicode.Scalar($0) ?? "?") }
        let text = Gen<String>.oneOf(
            Gen.letterOrNumber.string(of: 1...40),
            anyScalar.string(of: 0...40),
            Gen.always("a\u{0}\"\\/\u{1F}\u{7F}\u{2028}é\u{301}💥"))
        await propertyCheck(
            count: 300,
            input: Gen<UserEvent.Kind>.case, text, text, text, Gen.int64(in: 1...Int64.max), Gen.uint64()
        ) { kind, userID, name, eventID, version, noise in
            var random = FuzzRandom(seed: noise)
            var userID = userID.isEmpty ? "u" : userID
            while userID.utf8.count > EventLimits.userIDBytes { userID.unicodeScalars.removeLast() }
            var eventID = eventID.isEmpty ? "e" : eventID
            while eventID.utf8.count > EventLimits.eventIDBytes { eventID.unicodeScalars.removeLast() }
            let stamp = EventBodyGenerator.timestamp(&random, fractionDigits: 3)
            let event = UserEvent(
                kind: kind, userID: userID, name: kind == .deleted ? nil : name,
                email: kind == .deleted ? nil : name + "@example.com", eventID: eventID, version: version,
                occurredAt: nil)
            let body = EventBodyGenerator.body(of: event).dropLast() + Array(#","occurred_at":"\#(stamp)"}"#.utf8)
            do {
                let decoded = try UserEvent.decode(body: Array(body))
                #expect(decoded.occurredAt.map(Timestamp.format) == stamp)
                var withoutTime = decoded
                withoutTime.occurredAt = nil
                #expect(withoutTime == event)
                let fields = try JSONSerialization.jsonObject(with: Data(body)) as? NSDictionary
                let reencodedFields = try JSONSerialization.jsonObject(with: Data(decoded.encodedBody())) as? NSDictionary
                #expect(reencodedFields == fields, "\(String(decoding: body, as: UTF8.self))")
            } catch {
                Issue.record("a canonical body was refused: \(error); \(String(decoding: body, as: UTF8.self))")
            }
        }
    }

    // MARK: Properties

    /// Decodes `body` and checks every property that holds for any input; returns the outcome.
    @discardableResult
    static func check(body: [UInt8], messageID: String?, _ fuzzCase: FuzzCase) -> Result<UserEvent, EventDecodingError> {
        let result = Result { () throws(EventDecodingError) in try UserEvent.decode(body: body, messageID: messageID) }
        let typeResult = Result { () throws(EventDecodingError) in try UserEvent.eventType(of: body) }
        switch result {
        case .failure(let error):
            #expect(!error.reason.isEmpty, "\(fuzzCase)")
            #expect(
                error.field.map(EventBodyGenerator.knownFields.contains) ?? true,
                "the error names an unknown field: \(error); \(fuzzCase)")
            if case .failure(let typeError) = typeResult {
                #expect(typeError == error, "eventType(of:) and decode disagree; \(fuzzCase)")
            }
        case .success(let event):
            let typeMatches = (try? typeResult.get()) == event.kind.rawValue
            #expect(typeMatches, "eventType(of:) and decode disagree; \(fuzzCase)")
            let userIDBytes = event.userID.utf8.count
            #expect((1...EventLimits.userIDBytes).contains(userIDBytes), "\(fuzzCase)")
            #expect((event.name?.utf8.count ?? 0) <= EventLimits.nameBytes, "\(fuzzCase)")
            #expect((event.email?.utf8.count ?? 0) <= EventLimits.emailBytes, "\(fuzzCase)")
            #expect(event.eventID.utf8.count <= EventLimits.eventIDBytes || event.eventID.hasPrefix("body-"), "\(fuzzCase)")
            #expect(event.version >= 1, "\(fuzzCase)")
            #expect((event.kind == .deleted) == (event.name == nil && event.email == nil), "\(fuzzCase)")
            let hasEventID = !event.eventID.isEmpty
            #expect(hasEventID, "\(fuzzCase)")
            if let messageID, !messageID.isEmpty, messageID.utf8.count <= EventLimits.eventIDBytes,
                event.eventID.hasPrefix("body-")
            {
                Issue.record("the body hash was used although a message id was given; \(fuzzCase)")
            }
            Self.checkRoundTrip(event, fuzzCase)
        }
        return result
    }

    /// Re-encoding keeps the event (timestamps to the millisecond), and a second hop is exact.
    static func checkRoundTrip(_ event: UserEvent, _ fuzzCase: FuzzCase) {
        let once: UserEvent
        do {
            once = try UserEvent.decode(body: event.encodedBody())
        } catch {
            Issue.record("a decoded event does not decode after re-encoding: \(error); \(fuzzCase)")
            return
        }
        var expected = event
        expected.occurredAt = once.occurredAt
        if once != expected {
            Issue.record("re-encoding changed the event: \(difference(expected, once)); \(fuzzCase)")
        }
        switch (event.occurredAt, once.occurredAt) {
        case (nil, nil): break
        case (let before?, let after?):
            #expect(abs(before.timeIntervalSince(after)) < 0.001, "re-encoding moved the time; \(fuzzCase)")
        default: Issue.record("re-encoding lost or invented the time; \(fuzzCase)")
        }
        guard let twice = try? UserEvent.decode(body: once.encodedBody()) else {
            Issue.record("a re-encoded event does not decode after re-encoding; \(fuzzCase)")
            return
        }
        // A Date (a Double of seconds) has no millisecond left beyond about year 140,000, and the parser accepts
        // years like 222099: there a hop may still move the time by a millisecond.
        let millisecondsFit = once.occurredAt.map { abs($0.timeIntervalSince1970) < 1e12 } ?? true
        if twice != once && millisecondsFit {
            Issue.record("a second re-encoding changed the event: \(difference(once, twice)); \(fuzzCase)")
        }
    }

    // MARK: Inputs

    /// A valid event of any kind, with fields near their limits now and then.
    static func validEvent(_ random: inout FuzzRandom) -> UserEvent {
        let kind = random.pick(UserEvent.Kind.allCases)
        let stamp = EventBodyGenerator.timestamp(&random, fractionDigits: 3)
        return UserEvent(
            kind: kind, userID: random.chance(0.1) ? String(repeating: "u", count: EventLimits.userIDBytes) : EventBodyGenerator.uuid(&random),
            name: kind == .deleted ? nil : random.pick(["Alice", "Zoë", "李小龍", "a\"b\\c\u{1}"]),
            email: kind == .deleted ? nil : "alice@example.com", eventID: EventBodyGenerator.uuid(&random),
            version: Int64(random.int(1...1_000_000)), occurredAt: random.chance(0.9) ? Timestamp.parse(stamp) : nil)
    }

    /// The AMQP `message_id` that came with the body: none, empty, or some id.
    static func messageID(_ random: inout FuzzRandom) -> String? {
        random.pick([nil, "", "m-1", EventBodyGenerator.uuid(&random)])
    }

    /// The fields in which two events differ, values shortened.
    static func difference(_ a: UserEvent, _ b: UserEvent) -> String {
        func short(_ value: Any?) -> String { preview(Array(String(describing: value ?? "nil").utf8), limit: 80) }
        var parts: [String] = []
        if a.kind != b.kind { parts.append("kind \(a.kind) → \(b.kind)") }
        if a.userID != b.userID { parts.append("user_id \(short(a.userID)) → \(short(b.userID))") }
        if a.name != b.name { parts.append("name \(short(a.name)) → \(short(b.name))") }
        if a.email != b.email { parts.append("email \(short(a.email)) → \(short(b.email))") }
        if a.eventID != b.eventID { parts.append("event_id \(short(a.eventID)) → \(short(b.eventID))") }
        if a.version != b.version { parts.append("version \(a.version) → \(b.version)") }
        if a.occurredAt != b.occurredAt {
            parts.append(
                "occurred_at \(short(a.occurredAt?.timeIntervalSince1970)) → \(short(b.occurredAt?.timeIntervalSince1970))")
        }
        return parts.joined(separator: ", ")
    }

    /// An outcome in a few words.
    static func summary(_ result: Result<UserEvent, EventDecodingError>) -> String {
        switch result {
        case .success(let event): "event \(event.kind.rawValue) v\(event.version)"
        case .failure(let error): "error '\(error)'"
        }
    }
}
