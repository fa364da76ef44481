import EventCodec
import Foundation
import Testing

/// `UserEvent`'s own scanner against the `JSONDecoder` version it replaced (``FoundationEventDecoder``), on random
/// and mutated bodies: both must accept the same bodies, decode the same events and give the same errors, except
/// for these deliberate differences, where the new decoder is stricter:
///
/// 1. JSON that RFC 8259 does not allow is "body is not valid JSON" wherever it is: trailing commas (which
///    `JSONDecoder` and `JSONSerialization` both accept), invalid strings and numbers inside nested arrays and
///    objects (which `JSONDecoder` does not look at, but `JSONSerialization` rejects), bodies in UTF-16 or UTF-32
///    (which `JSONDecoder` converts; the wire format is UTF-8), and a top-level non-object with such content (which
///    `JSONDecoder` called "body is not a JSON object").
/// 2. A known field given twice is "<field>: given more than once" (`JSONDecoder` took the first, Python's
///    `json.loads` takes the last: the two systems would read different events).
/// 3. A `version` written with a fraction or exponent is an integer only below 2^53 (`1e18` is "must be an
///    integer"; `JSONDecoder` re-read such numbers as a `Decimal`).
struct EventDecoderDifferentialTests {
    @Test func generatedObjects() {
        Fuzz.run("event-decoder.differential-objects", cases: 3_000, seed: 0xD1) { fuzzCase in
            let body = EventBodyGenerator.object(&fuzzCase.random).text
            fuzzCase.note(input: body)
            Self.compare(body: body, messageID: EventDecoderFuzzTests.messageID(&fuzzCase.random), fuzzCase)
        }
    }

    @Test func mutatedValidBodies() {
        Fuzz.run("event-decoder.differential-mutations", cases: 3_000, seed: 0xD2) { fuzzCase in
            let event = EventDecoderFuzzTests.validEvent(&fuzzCase.random)
            let original = fuzzCase.random.chance(0.5) ? event.encodedBody() : EventBodyGenerator.body(of: event)
            let body = Mutation.mutate(
                original, count: 4, using: &fuzzCase.random, interesting: EventBodyGenerator.interestingBytes)
            fuzzCase.note(input: body)
            Self.compare(body: body, messageID: EventDecoderFuzzTests.messageID(&fuzzCase.random), fuzzCase)
        }
    }

    @Test func randomBytes() {
        Fuzz.run("event-decoder.differential-bytes", cases: 2_000, seed: 0xD3) { fuzzCase in
            var body = fuzzCase.random.bytes(
                count: fuzzCase.random.length(upTo: 512), interesting: EventBodyGenerator.interestingBytes)
            if fuzzCase.random.chance(0.7) { body = Array(#"{"event":"user_deleted","user_id":"u","#.utf8) + body }
            fuzzCase.note(input: body)
            Self.compare(body: body, messageID: nil, fuzzCase)
        }
    }

    /// The deliberate differences, each on an example, so the exceptions above stay as narrow as they say.
    @Test(arguments: [
        #"{"event":"user_deleted","user_id":"u",}"#,
        #"{"event":"user_deleted","user_id":"u","x":[1,]}"#,
        #"{"event":"user_deleted","user_id":"u","x":["\q"]}"#,
        #"{"event":"user_deleted","user_id":"u","x":[01]}"#,
        #"{"event":"user_deleted","user_id":"u","user_id":"v"}"#,
        #"{"event":"user_deleted","user_id":"u","version":1e18}"#,
    ])
    func documentedDifferencesAreExplained(body: String) {
        let bytes = Array(body.utf8)
        let new = Result { () throws(EventDecodingError) in try UserEvent.decode(body: bytes) }
        let old = FoundationEventDecoder.decode(body: bytes, messageID: nil)
        #expect(Self.summary(new) != Self.summary(old), "not a difference: \(body)")
        #expect(Self.explains(new, body: bytes), "\(Self.summary(new)) vs \(Self.summary(old))")
    }

    // MARK: Comparison

    static func compare(body: [UInt8], messageID: String?, _ fuzzCase: FuzzCase) {
        let new = Result { () throws(EventDecodingError) in try UserEvent.decode(body: body, messageID: messageID) }
        let old = FoundationEventDecoder.decode(body: body, messageID: messageID)
        switch (new, old) {
        case (.success(let event), .success(let reference)) where event == reference: break
        case (.failure(let error), .failure(let reference)) where error == reference: break
        default:
            if !Self.explains(new, body: body) {
                Issue.record("the decoders disagree: \(Self.summary(new)) vs Foundation's \(Self.summary(old)); \(fuzzCase)")
            }
        }
        Self.checkEnvelope(body: body, messageID: messageID, decoded: new, fuzzCase)
    }

    /// `envelope(of:messageID:)`, the router's one scan, says what `decode` says.
    static func checkEnvelope(
        body: [UInt8], messageID: String?, decoded: Result<UserEvent, EventDecodingError>, _ fuzzCase: FuzzCase
    ) {
        let envelope = Result { () throws(EventDecodingError) in
            try UserEvent.envelope(of: body, messageID: messageID)
        }
        switch (decoded, envelope) {
        case (.success(let event), .success(let read)):
            #expect(read.type == event.kind.rawValue && read.event == event, "\(fuzzCase)")
        case (.failure(let error), .success(let read)):
            let unknownType = error.field == "event" && error.reason.hasPrefix("unknown event type")
            #expect(unknownType && read.event == nil && UserEvent.Kind(rawValue: read.type) == nil, "\(fuzzCase)")
        case (.failure(let error), .failure(let readError)):
            #expect(error == readError, "\(fuzzCase)")
        case (.success, .failure(let readError)):
            Issue.record("envelope(of:) refused what decode accepted: \(readError); \(fuzzCase)")
        }
    }

    /// Whether the new decoder's outcome is one of the documented differences.
    static func explains(_ new: Result<UserEvent, EventDecodingError>, body: [UInt8]) -> Bool {
        // Never the other way round: what Foundation refused, the new decoder refuses too.
        guard case .failure(let error) = new else { return false }
        if error == EventDecodingError(field: nil, reason: "body is not valid JSON") {
            let strictlyValid =
                (try? JSONSerialization.jsonObject(with: Data(body), options: .fragmentsAllowed)) != nil
                && !Self.hasTrailingComma(body) && !Self.isWideEncoding(body)
            return !strictlyValid
        }
        if error.reason == "given more than once", let field = error.field {
            return Self.occurrences(of: Array("\"\(field)\"".utf8), in: body) >= 2
        }
        if error == EventDecodingError(field: "version", reason: "must be an integer"),
            case .success(let fields) = FoundationEventDecoder.fields(body),
            case .integer(let version)? = fields["version"]
        {
            return version.magnitude >= 1 << 53
        }
        return false
    }

    /// A `,` before `}` or `]` outside strings.
    static func hasTrailingComma(_ body: [UInt8]) -> Bool {
        var inString = false
        var escaped = false
        var afterComma = false
        for byte in body {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                afterComma = false
            case UInt8(ascii: ","): afterComma = true
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if afterComma { return true }
            case 0x20, 0x09, 0x0A, 0x0D: break
            default: afterComma = false
            }
        }
        return false
    }

    /// UTF-16 or UTF-32 as `JSONDecoder` recognises it: a byte order mark, or a zero byte among the first four.
    static func isWideEncoding(_ body: [UInt8]) -> Bool {
        if body.starts(with: [0xFF, 0xFE]) || body.starts(with: [0xFE, 0xFF]) { return true }
        return body.prefix(4).contains(0)
    }

    static func occurrences(of needle: [UInt8], in body: [UInt8]) -> Int {
        guard body.count >= needle.count else { return 0 }
        return (0...(body.count - needle.count)).count(where: { body[$0..<($0 + needle.count)].elementsEqual(needle) })
    }

    static func summary(_ result: Result<UserEvent, EventDecodingError>) -> String {
        switch result {
        case .success(let event): "event \(event)"
        case .failure(let error): "error '\(error)'"
        }
    }
}
