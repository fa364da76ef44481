import EventCodec
import Foundation

/// Event bodies as a hostile or careless publisher would send them: JSON objects whose fields are missing,
/// repeated, of the wrong type, oversized or oddly encoded, with unknown fields and deep nesting; sometimes not
/// JSON at all.
///
/// The generator writes JSON text itself (rather than through an encoder) so that it can also write what no
/// encoder writes: duplicate keys, raw control characters, lone surrogate escapes, invalid UTF-8, huge numbers.
struct EventBodyGenerator {
    /// The fields the decoder knows.
    static let knownFields = ["event", "user_id", "name", "email", "event_id", "version", "occurred_at"]

    /// Bytes that matter to a JSON parser, for random bytes and mutations.
    static let interestingBytes: [UInt8] = Array(#"{}[]":,\ -+.0123456789eEtrufalsn"#.utf8) + [
        0x00, 0x09, 0x0A, 0x0D, 0x7F, 0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
    ]

    /// One object member: key and value as JSON text.
    struct Member {
        var key: [UInt8]
        var value: [UInt8]
    }

    /// An object's members in order, before they are joined into text.
    var members: [Member] = []

    /// Whitespace between tokens, varied per body.
    private var spacing: [UInt8] = []

    /// A random object with the event's fields, each present or not, valid or not.
    static func object(_ random: inout FuzzRandom) -> EventBodyGenerator {
        var generator = EventBodyGenerator()
        generator.spacing = random.chance(0.8) ? [] : [random.pick([0x20, 0x09, 0x0A, 0x0D] as [UInt8])]
        let kind = random.pick(["user_created", "user_updated", "user_deleted"])
        for field in Self.knownFields where random.chance(0.85) {
            generator.members.append(Member(key: Self.string(field), value: Self.value(for: field, kind: kind, &random)))
        }
        // Unknown fields, sometimes deep or large.
        for _ in 0..<random.pick([0, 0, 1, 2, 5]) {
            generator.members.append(Member(key: Self.unknownKey(&random), value: Self.anyValue(depth: 0, &random)))
        }
        if random.chance(0.05) {  // a repeated known key
            let field = random.pick(Self.knownFields)
            generator.members.append(Member(key: Self.string(field), value: Self.value(for: field, kind: kind, &random)))
        }
        generator.members.shuffle(using: &random)
        return generator
    }

    /// The object as JSON text.
    var text: [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")] + self.spacing
        for (index, member) in self.members.enumerated() {
            if index > 0 { out += [UInt8(ascii: ",")] + self.spacing }
            out += member.key + self.spacing + [UInt8(ascii: ":")] + self.spacing + member.value
        }
        return out + self.spacing + [UInt8(ascii: "}")]
    }

    /// The body of `event` with the fields in the wire format's order. (`UserEvent.encodedBody()` leaves the order
    /// to `JSONEncoder`, which varies from process to process; a mutation of it would not replay.)
    static func body(of event: UserEvent) -> [UInt8] {
        var generator = EventBodyGenerator()
        func add(_ key: String, _ value: [UInt8]) { generator.members.append(Member(key: Self.string(key), value: value)) }
        add("event", Self.string(event.kind.rawValue))
        add("user_id", Self.string(event.userID))
        if let name = event.name { add("name", Self.string(name)) }
        if let email = event.email { add("email", Self.string(email)) }
        add("event_id", Self.string(event.eventID))
        add("version", Array(String(event.version).utf8))
        if let occurredAt = event.occurredAt { add("occurred_at", Self.string(Timestamp.format(occurredAt))) }
        return generator.text
    }

    /// A key that is none of the known fields.
    static func unknownKey(_ random: inout FuzzRandom) -> [UInt8] {
        let name = random.pick(["x", "extra", "Event", "user-id", "EVENT", "event ", "_meta", "é", "💥", ""])
        return Self.string("x_" + name + String(random.int(0...999)))
    }

    /// A value for a known field: usually of the right type and shape, often at or past a limit, sometimes wrong.
    static func value(for field: String, kind: String, _ random: inout FuzzRandom) -> [UInt8] {
        if random.chance(0.1) { return Self.anyValue(depth: 0, &random) }  // any type at all
        switch field {
        case "event":
            return Self.string(
                random.chance(0.8)
                    ? kind
                    : random.pick(["USER_CREATED", "user_created ", "", "user_created\u{0}", "order_placed", "ユーザー"]))
        case "user_id", "event_id":
            switch random.int(0...5) {
            case 0: return Self.string("")
            case 1:
                let count = random.pick([63, 64, 65, 128, 300, 70_000])
                return count == 70_000 ? Self.hugeID : Self.string(String(repeating: "a", count: count))
            case 2: return Self.string(String(repeating: "€", count: random.pick([21, 22, 100])))  // 3 bytes each
            case 3: return Self.randomString(&random)
            default: return Self.string(Self.uuid(&random))
            }
        case "name", "email":
            switch random.int(0...5) {
            case 0: return Self.string("")
            case 1:
                let count = random.pick([10, 199, 200, 1000, 30_000])  // 399 and 401 bytes around the limit
                return count == 30_000 ? Self.hugeCluster : Self.string("a" + String(repeating: "\u{301}", count: count))
            case 2: return Self.randomString(&random)
            case 3: return random.chance(0.1) ? Self.hugeName : Self.randomString(&random)
            default: return Self.string(random.pick(["Alice", "Zoë Ø'Brien", "alice@example.com", "李小龍", "a\"b\\c"]))
            }
        case "version":
            return Array(
                random.pick([
                    "1", "2", "0", "-1", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
                    "99999999999999999999999", "1e3", "1E400", "1.0", "1.5", "-0", "0.0", "\"1\"", "true", "null",
                    "1e-400", "[1]", "{\"v\":1}",
                ]).utf8)
        default:  // occurred_at
            switch random.int(0...4) {
            case 0: return Self.string(Self.timestamp(&random, fractionDigits: random.pick([0, 1, 4, 9])))
            case 1:
                return Self.string(
                    random.pick([
                        "", "now", "2026-02-30T10:00:00Z", "2026-11-24T10:00:00", "2026-11-24 10:00:00Z",
                        "2026-11-24T10:00:00.123+02:00", "-0001-01-01T00:00:00Z", "99999-01-01T00:00:00Z",
                        "2026-11-24T25:61:61Z", "1970-01-01T00:00:00.000Z",
                    ]))
            default: return Self.string(Self.timestamp(&random, fractionDigits: 3))
            }
        }
    }

    /// Oversized values, written once: building them is what costs in a debug build.
    static let hugeID = Self.string(String(repeating: "a", count: 70_000))
    static let hugeName = Self.string(String(repeating: "n", count: 100_000))
    /// One letter and 30,000 combining marks: one character of 60 kB.
    static let hugeCluster = Self.string("a" + String(repeating: "\u{301}", count: 30_000))

    /// A timestamp in the wire form `yyyy-MM-ddTHH:mm:ss[.f…]Z`, over the whole four-digit year range.
    static func timestamp(_ random: inout FuzzRandom, fractionDigits: Int) -> String {
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let year = random.chance(0.7) ? random.int(1970...2100) : random.int(1...9999)
        var text = "\(pad(year, 4))-\(pad(random.int(1...12), 2))-\(pad(random.int(1...28), 2))"
        text += "T\(pad(random.int(0...23), 2)):\(pad(random.int(0...59), 2)):\(pad(random.int(0...59), 2))"
        if fractionDigits > 0 {
            text += "." + (0..<fractionDigits).map { _ in String(random.int(0...9)) }.joined()
        }
        return text + "Z"
    }

    /// Any JSON value (sometimes not quite JSON), nested up to a few levels, or very deep now and then.
    static func anyValue(depth: Int, _ random: inout FuzzRandom) -> [UInt8] {
        if depth == 0 && random.chance(0.03) {
            // Deeper than the parser's nesting limit (512) or just under it.
            let levels = random.pick([400, 511, 513, 5_000])
            let (open, close): (String, String) = random.chance(0.5) ? ("[", "]") : ("{\"a\":", "}")
            return Array((String(repeating: open, count: levels) + "0" + String(repeating: close, count: levels)).utf8)
        }
        switch random.int(0...9) {
        case 0: return Array("null".utf8)
        case 1: return Array(random.pick(["true", "false"]).utf8)
        case 2: return Array(random.pick(["0", "-1", "3.14", "1e308", "-1e-308", "123456789012345678901234567890"]).utf8)
        case 3, 4: return Self.randomString(&random)
        case 5 where depth < 4:
            let items = (0..<random.int(0...4)).map { _ in Self.anyValue(depth: depth + 1, &random) }
            return [UInt8(ascii: "[")] + Array(items.joined(separator: [UInt8(ascii: ",")])) + [UInt8(ascii: "]")]
        case 6 where depth < 4:
            let items = (0..<random.int(0...4)).map { _ in
                Self.unknownKey(&random) + [UInt8(ascii: ":")] + Self.anyValue(depth: depth + 1, &random)
            }
            return [UInt8(ascii: "{")] + Array(items.joined(separator: [UInt8(ascii: ",")])) + [UInt8(ascii: "}")]
        default: return Self.string(Self.uuid(&random))
        }
    }

    /// A JSON string literal of random content: any scalars, written literally or as escapes, now and then with
    /// something invalid in it (a raw control character, a lone surrogate escape, invalid UTF-8, a bad escape).
    static func randomString(_ random: inout FuzzRandom) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for _ in 0..<random.length(upTo: 2_000) {
            switch random.int(0...19) {
            case 0: out += Array(String(format: "\\u%04x", random.int(0...0xFFFF)).utf8)  // may be a lone surrogate
            case 1: out += Array(random.pick([#"\n"#, #"\""#, #"\\"#, #"\/"#, #"\t"#, #"\b"#, #"\ud83d\ude00"#]).utf8)
            case 2 where random.chance(0.2): out += [random.pick([0x00, 0x1F, 0x0A] as [UInt8])]  // raw control: invalid
            case 3 where random.chance(0.2): out += [random.pick([0x80, 0xC0, 0xED, 0xF5, 0xFF] as [UInt8])]  // bad UTF-8
            case 4 where random.chance(0.2): out += Array(random.pick([#"\x"#, #"\u12"#, "\\"]).utf8)  // bad escape
            case 5, 6:
                let scalar = Unicode.Scalar(UInt32(random.int(0x80...0x10FFFF))) ?? "?"
                out += Array(String(Character(scalar)).utf8)
            default: out.append(UInt8(random.int(0x20...0x7E)))
            }
            if out.last == UInt8(ascii: "\\") && random.chance(0.9) { out.removeLast() }
            if out.last == UInt8(ascii: "\"") && out.count > 1 && out[out.count - 2] != UInt8(ascii: "\\") {
                out.removeLast()
            }
        }
        return out + [UInt8(ascii: "\"")]
    }

    /// A JSON string literal with exactly this content, escaped as a JSON encoder would.
    static func string(_ content: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for byte in content.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += Array(#"\""#.utf8)
            case UInt8(ascii: "\\"): out += Array(#"\\"#.utf8)
            case 0x00..<0x20: out += Array(String(format: "\\u%04x", Int(byte)).utf8)
            default: out.append(byte)
            }
        }
        return out + [UInt8(ascii: "\"")]
    }

    /// A lowercase UUID-shaped identifier.
    static func uuid(_ random: inout FuzzRandom) -> String {
        let hex = (0..<32).map { _ in String(random.int(0...15), radix: 16) }.joined()
        return [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4),
                hex.dropFirst(20)].joined(separator: "-")
    }
}
