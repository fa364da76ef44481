/// The top-level fields of an event body that the decoder reads, from one pass over its UTF-8 bytes.
///
/// The whole body is validated as JSON (RFC 8259, strictly: no trailing commas, no invalid UTF-8, no lone
/// surrogates in `\u` escapes, nothing after the value), including the members it does not keep; arrays and objects
/// are checked without recursion, to a nesting depth of ``EventScanner/maximumDepth``. Only the values of the known
/// fields become Swift values.
struct EventFields {
    /// The fields the decoder knows.
    enum Field: Int, CaseIterable {
        case event, userID, name, email, eventID, version, occurredAt

        /// The field's key on the wire.
        var key: String {
            switch self {
            case .event: "event"
            case .userID: "user_id"
            case .name: "name"
            case .email: "email"
            case .eventID: "event_id"
            case .version: "version"
            case .occurredAt: "occurred_at"
            }
        }
    }

    /// What the body said about one field.
    enum Slot: Equatable {
        case absent
        case present(JSONValue)
        /// The key appeared more than once: the body says two things about the field.
        case repeated
    }

    // One stored property per field (a tuple or an array costs a copy of all of them per access), and a bit per
    // field for "seen" and for "seen twice".
    private var event: JSONValue = .null
    private var userID: JSONValue = .null
    private var name: JSONValue = .null
    private var email: JSONValue = .null
    private var eventID: JSONValue = .null
    private var version: JSONValue = .null
    private var occurredAt: JSONValue = .null
    private var seen: UInt8 = 0
    private var repeated: UInt8 = 0

    subscript(field: Field) -> Slot {
        let bit: UInt8 = 1 << field.rawValue
        if repeated & bit != 0 { return .repeated }
        if seen & bit == 0 { return .absent }
        switch field {
        case .event: return .present(event)
        case .userID: return .present(userID)
        case .name: return .present(name)
        case .email: return .present(email)
        case .eventID: return .present(eventID)
        case .version: return .present(version)
        case .occurredAt: return .present(occurredAt)
        }
    }

    /// Records a member; a second one with the same key marks the field ``Slot/repeated``.
    mutating func record(_ field: Field, _ value: JSONValue) {
        let bit: UInt8 = 1 << field.rawValue
        if seen & bit != 0 {
            repeated |= bit
            return
        }
        seen |= bit
        switch field {
        case .event: event = value
        case .userID: userID = value
        case .name: name = value
        case .email: email = value
        case .eventID: eventID = value
        case .version: version = value
        case .occurredAt: occurredAt = value
        }
    }

    /// Scans `body`: its known fields, or the body-level error (not JSON, or not an object).
    static func scan(_ body: [UInt8]) throws(EventDecodingError) -> EventFields {
        let outcome = body.withUnsafeBufferPointer { bytes in
            var scanner = EventScanner(bytes: bytes)
            return scanner.scanBody()
        }
        return try outcome.get()
    }
}

/// A strict JSON scanner over a body's bytes, made for flat event objects.
struct EventScanner {
    /// The deepest nesting accepted, the top-level object included: `JSONDecoder`'s limit. Deeper bodies are
    /// rejected, so a hostile body costs time linear in its size and no stack.
    static let maximumDepth = 512

    private struct Invalid: Error {}

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func scanBody() -> Result<EventFields, EventDecodingError> {
        // A UTF-8 byte order mark is allowed (RFC 8259 §8.1), as `JSONDecoder` and Python's `json.loads` allow it.
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { index = 3 }
        skipWhitespace()
        do throws(Invalid) {
            if peek() == UInt8(ascii: "{") {
                let fields = try scanObject()
                try expectEnd()
                return .success(fields)
            }
            try skipValue()
            try expectEnd()
            return .failure(EventDecodingError(field: nil, reason: "body is not a JSON object"))
        } catch {
            return .failure(EventDecodingError(field: nil, reason: "body is not valid JSON"))
        }
    }

    // MARK: Structure

    private mutating func scanObject() throws(Invalid) -> EventFields {
        var fields = EventFields()
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return fields
        }
        while true {
            let field = try scanKey()
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            if let field {
                fields.record(field, try scanValue())
            } else {
                try skipValue()
            }
            skipWhitespace()
            switch try next() {
            case UInt8(ascii: ","): skipWhitespace()
            case UInt8(ascii: "}"): return fields
            default: throw Invalid()
            }
        }
    }

    /// A key at the current position (which must open a string): which known field it names, if any.
    private mutating func scanKey() throws(Invalid) -> EventFields.Field? {
        guard peek() == UInt8(ascii: "\"") else { throw Invalid() }
        let token = try scanString(keepingEscapes: true)
        if let decoded = token.decoded {
            return decoded.withUnsafeBufferPointer { Self.field(named: $0) }
        }
        return Self.field(named: UnsafeBufferPointer(rebasing: bytes[token.range]))
    }

    private static func field(named name: UnsafeBufferPointer<UInt8>) -> EventFields.Field? {
        func equals(_ key: StaticString) -> Bool {
            key.utf8CodeUnitCount == name.count && memoryEquals(key.utf8Start, name.baseAddress, name.count)
        }
        switch name.count {
        case 4: return equals("name") ? .name : nil
        case 5: return equals("event") ? .event : (equals("email") ? .email : nil)
        case 7: return equals("user_id") ? .userID : (equals("version") ? .version : nil)
        case 8: return equals("event_id") ? .eventID : nil
        case 11: return equals("occurred_at") ? .occurredAt : nil
        default: return nil
        }
    }

    private static func memoryEquals(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>?, _ count: Int) -> Bool {
        guard let b else { return count == 0 }
        for offset in 0..<count where a[offset] != b[offset] { return false }
        return true
    }

    /// A value of a known field, kept.
    private mutating func scanValue() throws(Invalid) -> JSONValue {
        switch peek() {
        case UInt8(ascii: "\""):
            let token = try scanString(keepingEscapes: true)
            if let decoded = token.decoded { return .string(String(decoding: decoded, as: UTF8.self)) }
            return .string(String(decoding: UnsafeBufferPointer(rebasing: bytes[token.range]), as: UTF8.self))
        case UInt8(ascii: "{"):
            try skipValue()
            return .object
        case UInt8(ascii: "["):
            try skipValue()
            return .array
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        default:
            return try scanNumber()
        }
    }

    /// Validates one value of any kind without keeping it. Nested arrays and objects are followed with a stack of
    /// container kinds (true for an object), not by recursion.
    private mutating func skipValue() throws(Invalid) {
        var containers: [Bool] = []
        while true {
            // A value starts here.
            switch peek() {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let isObject = try next() == UInt8(ascii: "{")
                // The top-level object counts towards the depth when this value is inside it.
                guard containers.count + 1 < Self.maximumDepth else { throw Invalid() }
                containers.append(isObject)
                skipWhitespace()
                if peek() == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    index += 1
                    containers.removeLast()
                } else {
                    if isObject { try skipKeyAndColon() }
                    continue
                }
            case UInt8(ascii: "\""): _ = try scanString(keepingEscapes: false)
            case UInt8(ascii: "t"): try expectLiteral("true")
            case UInt8(ascii: "f"): try expectLiteral("false")
            case UInt8(ascii: "n"): try expectLiteral("null")
            default: try skipNumber()
            }
            // After a value: close containers, or go on to the next element.
            while true {
                guard let isObject = containers.last else { return }
                skipWhitespace()
                switch try next() {
                case UInt8(ascii: ","):
                    skipWhitespace()
                    if isObject { try skipKeyAndColon() }
                case UInt8(ascii: "}") where isObject, UInt8(ascii: "]") where !isObject:
                    containers.removeLast()
                    continue
                default:
                    throw Invalid()
                }
                break
            }
        }
    }

    private mutating func skipKeyAndColon() throws(Invalid) {
        guard peek() == UInt8(ascii: "\"") else { throw Invalid() }
        _ = try scanString(keepingEscapes: false)
        skipWhitespace()
        try expect(UInt8(ascii: ":"))
        skipWhitespace()
    }

    // MARK: Strings

    /// A string's content: `range` in the body when it had no escapes, else `decoded` (when kept).
    private struct StringToken {
        var range: Range<Int>
        var decoded: [UInt8]?
    }

    /// Scans a string at the current position (its opening quote): checks UTF-8 and escapes, and decodes the escapes
    /// when `keepingEscapes`.
    private mutating func scanString(keepingEscapes: Bool) throws(Invalid) -> StringToken {
        index += 1
        let start = index
        var decoded: [UInt8]?
        while true {
            let runStart = index
            while index < bytes.count {
                let byte = bytes[index]
                if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte >= 0x80 { break }
                index += 1
            }
            if decoded != nil { decoded!.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index])) }
            guard index < bytes.count else { throw Invalid() }
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return StringToken(range: start..<(index - 1), decoded: decoded)
            case UInt8(ascii: "\\"):
                if keepingEscapes && decoded == nil {
                    decoded = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
                }
                index += 1
                try scanEscape(into: &decoded)
            case 0x80...:
                let length = try utf8SequenceLength()
                if decoded != nil {
                    decoded!.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<(index + length)]))
                }
                index += length
            default:  // a raw control character
                throw Invalid()
            }
        }
    }

    /// The escape after a backslash; appends what it stands for to `decoded` when there is one.
    private mutating func scanEscape(into decoded: inout [UInt8]?) throws(Invalid) {
        let byte = try next()
        let simple: UInt8
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): simple = byte
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"):
            var scalar = UInt32(try scanHex4())
            switch scalar {
            case 0xD800...0xDBFF:  // a high surrogate: only valid followed by an escaped low one
                guard try next() == UInt8(ascii: "\\"), try next() == UInt8(ascii: "u") else { throw Invalid() }
                let low = UInt32(try scanHex4())
                guard (0xDC00...0xDFFF).contains(low) else { throw Invalid() }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            case 0xDC00...0xDFFF:
                throw Invalid()
            default:
                break
            }
            if decoded != nil, let unicodeScalar = Unicode.Scalar(scalar) {
                decoded!.append(contentsOf: UTF8.encode(unicodeScalar)!)
            }
            return
        default:
            throw Invalid()
        }
        decoded?.append(simple)
    }

    private mutating func scanHex4() throws(Invalid) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = try next()
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw Invalid()
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    /// The length of the well-formed UTF-8 sequence at `index` (whose first byte is not ASCII), per the Unicode
    /// Standard's table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF.
    private func utf8SequenceLength() throws(Invalid) -> Int {
        func continuation(_ offset: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) throws(Invalid) {
            guard index + offset < bytes.count, range.contains(bytes[index + offset]) else { throw Invalid() }
        }
        switch bytes[index] {
        case 0xC2...0xDF:
            try continuation(1)
            return 2
        case 0xE0:
            try continuation(1, 0xA0...0xBF)
            try continuation(2)
            return 3
        case 0xE1...0xEC, 0xEE...0xEF:
            try continuation(1)
            try continuation(2)
            return 3
        case 0xED:
            try continuation(1, 0x80...0x9F)
            try continuation(2)
            return 3
        case 0xF0:
            try continuation(1, 0x90...0xBF)
            try continuation(2)
            try continuation(3)
            return 4
        case 0xF1...0xF3:
            try continuation(1)
            try continuation(2)
            try continuation(3)
            return 4
        case 0xF4:
            try continuation(1, 0x80...0x8F)
            try continuation(2)
            try continuation(3)
            return 4
        default:
            throw Invalid()
        }
    }

    // MARK: Numbers

    /// The extent of a number at the current position, checked against the RFC's grammar, and whether it is a
    /// plain integer (no fraction, no exponent).
    private mutating func numberToken() throws(Invalid) -> (range: Range<Int>, isPlainInteger: Bool) {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        switch peek() ?? 0 {
        case UInt8(ascii: "0"): index += 1
        case UInt8(ascii: "1")...UInt8(ascii: "9"): skipDigits()
        default: throw Invalid()
        }
        var isPlainInteger = true
        if peek() == UInt8(ascii: ".") {
            isPlainInteger = false
            index += 1
            guard isDigit(peek()) else { throw Invalid() }
            skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            isPlainInteger = false
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard isDigit(peek()) else { throw Invalid() }
            skipDigits()
        }
        return (start..<index, isPlainInteger)
    }

    /// Validates a number without keeping it. A number too large for a `Double` is rejected, as `JSONDecoder` and
    /// `JSONSerialization` reject it (RFC 8259 §6 lets a parser limit the range).
    private mutating func skipNumber() throws(Invalid) {
        let token = try numberToken()
        // Up to 18 characters, a plain integer fits an Int64; anything else needs a look at its value.
        if token.isPlainInteger && token.range.count <= 18 { return }
        _ = try value(ofNumber: token.range)
    }

    /// A number, typed as `JSONDecoder` typed it for an `Int64` field: a plain integer that fits is an integer; any
    /// other number is an integer when its `Double` value is whole and below 2^53 in magnitude (so `1.0` and `1e2`
    /// are integers, `1.5` and `1e19` are not).
    private mutating func scanNumber() throws(Invalid) -> JSONValue {
        let token = try numberToken()
        if token.isPlainInteger {
            if let integer = plainInteger(token.range) { return .integer(integer) }
            return .number(try value(ofNumber: token.range))
        }
        let double = try value(ofNumber: token.range)
        if double == double.rounded(.towardZero) && abs(double) < 9_007_199_254_740_992 {
            return .integer(Int64(double))
        }
        return .number(double)
    }

    /// The value of a plain integer token, or nil when it does not fit an `Int64`.
    private func plainInteger(_ range: Range<Int>) -> Int64? {
        var position = range.lowerBound
        let isNegative = bytes[position] == UInt8(ascii: "-")
        if isNegative { position += 1 }
        var magnitude: UInt64 = 0
        while position < range.upperBound {
            let digit = UInt64(bytes[position] - UInt8(ascii: "0"))
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(digit)
            if overflow1 || overflow2 { return nil }
            magnitude = sum
            position += 1
        }
        if isNegative {
            if magnitude == UInt64(Int64.max) + 1 { return Int64.min }
            return magnitude <= UInt64(Int64.max) ? -Int64(magnitude) : nil
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// The finite `Double` nearest to a number token; a number beyond the `Double` range is invalid.
    private func value(ofNumber range: Range<Int>) throws(Invalid) -> Double {
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        guard let double = Double(text), double.isFinite else { throw Invalid() }
        return double
    }

    private func isDigit(_ byte: UInt8?) -> Bool {
        guard let byte else { return false }
        return byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private mutating func skipDigits() {
        while isDigit(peek()) { index += 1 }
    }

    // MARK: Bytes

    private func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    private mutating func next() throws(Invalid) -> UInt8 {
        guard index < bytes.count else { throw Invalid() }
        defer { index += 1 }
        return bytes[index]
    }

    private mutating func expect(_ byte: UInt8) throws(Invalid) {
        guard try next() == byte else { throw Invalid() }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(Invalid) {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - index >= count,
            Self.memoryEquals(literal.utf8Start, bytes.baseAddress.map { $0 + index }, count)
        else { throw Invalid() }
        index += count
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func expectEnd() throws(Invalid) {
        skipWhitespace()
        guard index == bytes.count else { throw Invalid() }
    }
}
