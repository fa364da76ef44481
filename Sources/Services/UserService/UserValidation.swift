import EventCodec
import HTTPServer
import NIOHTTP1

/// The rules for every piece of text the user API accepts: body fields, stored headers, path ids and query values.
///
/// Every limit is in UTF-8 bytes (a character can be any number of bytes: one letter with 300,000 combining marks
/// is one character of 600 kB), and names also in characters. Together the limits bound a user's JSON to about
/// 1.3 kB, so a page of the most users the list returns (500) stays under 700 kB.
enum UserValidation {
    /// Characters (as a reader counts them) in a name.
    static let nameMaxCharacters = 100
    /// UTF-8 bytes in a name: room for 100 characters of any script, not for stacked combining marks.
    static let nameMaxBytes = EventLimits.nameBytes
    /// UTF-8 bytes in an email address (RFC 5321's path limit); the local part at most 64.
    static let emailMaxBytes = EventLimits.emailBytes
    /// UTF-8 bytes in an `Idempotency-Key`.
    static let idempotencyKeyMaxBytes = 255
    /// UTF-8 bytes in a user id in a path (ids are UUIDs, 36 bytes).
    static let idMaxBytes = EventLimits.userIDBytes
    /// UTF-8 bytes in a list cursor (`after`).
    static let cursorMaxBytes = 64

    /// A name: surrounding whitespace trimmed, then 1 to 100 characters and at most 400 bytes, no control characters.
    static func name(_ raw: String) throws(HTTPError) -> String {
        let name = raw.trimmingWhitespace()
        guard !name.isEmpty else { throw invalid("name", "must not be empty") }
        try bounded(name, "name", maxBytes: nameMaxBytes)  // before counting characters: bytes bound that work too
        guard name.count <= nameMaxCharacters else {
            throw invalid("name", "must be at most \(nameMaxCharacters) characters")
        }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw invalid("name", "must not contain control characters")
        }
        return name
    }

    /// A plausible email address: `local@domain.tld`, at most 254 bytes (local part 64), no spaces or control
    /// characters (surrounding whitespace included: an address is taken as typed, never silently changed).
    static func email(_ email: String) throws(HTTPError) -> String {
        guard !email.isEmpty else { throw invalid("email", "must not be empty") }
        try bounded(email, "email", maxBytes: emailMaxBytes)
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, let local = parts.first, let domain = parts.last,
            !local.isEmpty, local.utf8.count <= 64,
            !email.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0 == "\u{7F}" })
        else {
            throw invalid("email", "is not a valid email address")
        }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2,
            labels.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 && !$0.hasPrefix("-") && !$0.hasSuffix("-") }),
            domain.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." })
        else {
            throw invalid("email", "is not a valid email address")
        }
        return email
    }

    /// An `Idempotency-Key`: 1 to 255 bytes of visible ASCII (it is stored and compared byte for byte).
    static func idempotencyKey(_ key: String) throws(HTTPError) -> String {
        guard !key.isEmpty else { throw invalid("Idempotency-Key", "must not be empty") }
        try bounded(key, "Idempotency-Key", maxBytes: idempotencyKeyMaxBytes)
        guard key.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) else {
            throw invalid("Idempotency-Key", "must be visible ASCII characters")
        }
        return key
    }

    /// A user id from a path: at most 64 bytes (no id is longer, and the value is echoed in errors), no control
    /// characters (no id has one, and PostgreSQL text cannot hold a NUL: a lookup would fail as a database error).
    static func id(_ id: String) throws(HTTPError) -> String {
        try bounded(id, "id", maxBytes: idMaxBytes)
        guard !id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw invalid("id", "must not contain control characters")
        }
        return id
    }

    /// Refuses `value` when it has more than `maxBytes` UTF-8 bytes.
    static func bounded(_ value: String, _ field: String, maxBytes: Int) throws(HTTPError) {
        guard value.utf8.count <= maxBytes else { throw invalid(field, "must be at most \(maxBytes) bytes (UTF-8)") }
    }

    static func invalid(_ field: String, _ problem: String) -> HTTPError {
        HTTPError(.unprocessableEntity, error: "validation_failed", detail: "\(field): \(problem)")
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self).unicodeScalars
        while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
